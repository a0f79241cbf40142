"""From 1280 px up, no table spills out of (or is clipped by) its card: wide tables scroll inside
it; the page never scrolls sideways; the sidebar's column is dark down to the end of long pages."""

import pytest

from tests.fixtures import pve, sim_cluster  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SPILLS = """() => {
  const problems = [];
  for (const table of document.querySelectorAll('table')) {
    const card = table.closest('.card');
    if (!card || !table.getClientRects().length) continue;
    if (table.getBoundingClientRect().right <= card.getBoundingClientRect().right + 1) continue;
    let scroller = false;
    for (let el = table.parentElement; el && el !== card.parentElement; el = el.parentElement) {
      if (['auto', 'scroll'].includes(getComputedStyle(el).overflowX)) { scroller = true; break; }
    }
    if (!scroller) problems.push(`${table.closest('[id]')?.id || card.className}: ${table.innerText.slice(0, 40)}`);
  }
  const doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1) problems.push(`page ${doc.scrollWidth}px wide in ${doc.clientWidth}px`);
  return problems;
}"""


@pytest.mark.parametrize("width", [1280, 1400])
def test_tables_stay_inside_their_cards(operator_page, live_server, sim_cluster, width):  # noqa: F811
    from apps.guests.models import Guest

    page = operator_page
    page.set_viewport_size({"width": width, "height": 800})
    guest = Guest.objects.filter(cluster=sim_cluster, type="qemu").order_by("vmid").first()
    for path in ["/guests/", guest.get_absolute_url(), "/nodes/", "/storage/", "/gpus/", "/operations/", "/audit/"]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert page.evaluate(SPILLS) == [], path

    # A long page: at its very bottom, the left edge is still the sidebar's dark column.
    page.goto(f"{live_server.url}{guest.get_absolute_url()}")
    page.wait_for_load_state("networkidle")
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    colour = page.evaluate("""() => {
      const el = document.elementFromPoint(5, window.innerHeight - 3);
      let node = el; while (node && getComputedStyle(node).backgroundColor === 'rgba(0, 0, 0, 0)'
                              && getComputedStyle(node).backgroundImage === 'none') node = node.parentElement;
      return node ? [node.className, getComputedStyle(node).backgroundColor, getComputedStyle(node).backgroundImage] : null;
    }""")
    sidebar = page.evaluate("getComputedStyle(document.querySelector('.sidebar')).backgroundColor")
    assert colour is not None and (colour[1] == sidebar or "gradient" in colour[2]), colour
