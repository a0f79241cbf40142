"""Browser: a running VM's console draws pvesim's framebuffer on noVNC's canvas (pixel for pixel
the guest's name and state), Ctrl-Alt-Del and paste reach the VM, a container's terminal echoes
a command, a stopped guest offers to start; no console error anywhere. Real pvesim, ASGI server,
Redis channel layer, Debian chromium."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from pvesim import rfb

from .conftest import guest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

CANVAS_RGBA = """() => {
  const canvas = document.querySelector('#console-screen canvas');
  if (!canvas || canvas.width < 2) return null;
  // Read a copy (one readback per fresh canvas): the page's own canvas stays as noVNC set it up.
  const copy = document.createElement('canvas');
  copy.width = canvas.width;
  copy.height = canvas.height;
  const ctx = copy.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(canvas, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let text = '';
  for (let i = 0; i < data.length; i += 8192) text += String.fromCharCode.apply(null, data.subarray(i, i + 8192));
  return [canvas.width, canvas.height, btoa(text)];
}"""


def watch(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: m.type in ("error", "warning") and errors.append(f"console.{m.type}: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"uncaught {e}"))
    page.on("requestfailed", lambda r: errors.append(f"failed {r.url}"))
    return errors


def screen_matches(page, keys: str) -> bool:
    got = page.evaluate(CANVAS_RGBA)
    if got is None:
        return False
    width, height, data = got
    if (width, height) != (rfb.WIDTH, rfb.HEIGHT):
        return False
    rgba = base64.b64decode(data)
    lines = rfb.screen_lines(kind="VM", vmid=100, name="web-01", status="running", keys=keys)
    expected = b"".join(bytes((*rfb.PALETTE[i], 255)) for i in rfb.render(lines))
    return rgba == expected


def wait_screen(page, keys: str, attempts: int = 150) -> None:
    """Look at the canvas every 100 ms until it shows pvesim's picture (a bound, not a timing check)."""
    for _ in range(attempts):
        if screen_matches(page, keys):
            return
        page.wait_for_timeout(100)
    pytest.fail(f"the canvas never showed web-01 with keys {keys!r}")


def test_vm_console_draws_the_framebuffer_and_takes_keys(operator_page, live_server, sim_cluster):
    page = operator_page
    errors = watch(page)
    ARTIFACTS.mkdir(exist_ok=True)
    vm = guest(sim_cluster, 100)
    # Settled first: a tab click while the overview tab still loads aborts that load (as it should),
    # which `watch` would count as a failed request.
    page.goto(f"{live_server.url}/guests/{vm.pk}/", wait_until="networkidle")
    page.click("nav.tabs >> text=Console")
    page.wait_for_selector("#console-status[data-state=connected]")
    wait_screen(page, "")  # non-blank, and exactly the name and state pvesim drew
    page.click("[data-console=ctrlaltdel]")
    wait_screen(page, "CTRL-ALT-DEL")
    page.fill("[data-console=paste] input[name=text]", "hello vm")
    page.click("[data-console=paste] button")
    wait_screen(page, "CTRL-ALT-DELhello vm")
    page.screenshot(path=str(ARTIFACTS / "console-vm.png"), full_page=True)
    with page.expect_popup() as popup_info:
        page.click("[data-console=popout]")
    popup = popup_info.value
    popup_errors = watch(popup)
    popup.wait_for_selector("#console-status[data-state=connected]")
    assert popup.locator("nav.tabs").count() == 0  # the window holds the console only
    popup.close()
    page.click("[data-console=reconnect]")
    page.wait_for_selector("#console-status[data-state=connected]")
    wait_screen(page, "")
    assert errors + popup_errors == []


def test_container_terminal_echoes_and_a_stopped_guest_offers_start(operator_page, live_server, sim_cluster):
    page = operator_page
    errors = watch(page)
    ct = guest(sim_cluster, 200)
    page.goto(f"{live_server.url}/guests/{ct.pk}/console/")
    page.wait_for_selector("#console-status[data-state=connected]")
    rows = page.locator("#console-screen .xterm-rows")
    rows.filter(has_text="root@dns-01:~#").wait_for()
    page.locator("#console-screen").click()
    page.keyboard.type("echo typed-in-the-browser")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('#console-screen .xterm-rows').innerText.split('typed-in-the-browser').length > 2")
    lines = [line.strip() for line in rows.inner_text().splitlines()]
    assert "typed-in-the-browser" in lines  # the echo, on its own line under the command
    page.screenshot(path=str(ARTIFACTS / "console-ct.png"), full_page=True)

    stopped = guest(sim_cluster, 104)
    page.goto(f"{live_server.url}/guests/{stopped.pk}/console/")
    page.wait_for_selector("#console-state[data-code='4409']")
    assert "not running" in page.inner_text("#console-state")
    assert page.locator("#console-state .console-start button[value=start]").is_visible()
    assert errors == []
