"""The console relay end to end: browser-side websocket -> real ASGI server (Channels, Redis
layer) -> gateway -> pvesim's vncwebsocket (RFB server / line terminal) and back."""

from __future__ import annotations

import struct

import pytest

from apps.consoles.models import ConsoleSession, TenantConsoleSetting
from apps.core.models import AuditEntry
from pvesim import rfb
from tests.fixtures import wait_for

from .conftest import Stream, close_code, guest, open_console

pytestmark = pytest.mark.django_db(transaction=True)


def rfb_connect(ws) -> tuple[Stream, int, int, bytes]:
    """The browser's half of RFB 3.8 through the relay: the relay offers security None only."""
    io = Stream(ws)
    assert io.read(12, timeout=15) == b"RFB 003.008\n"
    ws.send(b"RFB 003.008\n")
    assert io.read(2, timeout=15) == b"\x01\x01"  # one security type, None: VNC auth happened upstream
    ws.send(b"\x01")
    assert io.read(4, timeout=15) == b"\x00\x00\x00\x00"
    ws.send(b"\x01")  # ClientInit, shared
    width, height = struct.unpack(">HH", io.read(4, timeout=15))
    io.read(16, timeout=15)  # pixel format
    name = io.read(struct.unpack(">I", io.read(4, timeout=15))[0], timeout=15)
    return io, width, height, name


def test_vm_console_relays_rfb_and_a_framebuffer_and_audits_the_session(asgi_server, sim_cluster, operator, pvesim):
    vm = guest(sim_cluster, 100)  # web-01, running on pve1
    with open_console(asgi_server, operator, f"/ws/guests/{vm.pk}/console/") as ws:
        assert ws.subprotocol == "binary"
        io, width, height, name = rfb_connect(ws)
        assert (width, height) == (rfb.WIDTH, rfb.HEIGHT)
        assert b"web-01" in name
        # 32 bpp little endian, red at 0, as noVNC asks; then a full update request.
        ws.send(struct.pack(">B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 255, 255, 255, 0, 8, 16))
        ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        header = io.read(4, timeout=15)
        assert header[0] == 0 and struct.unpack(">H", header[2:])[0] == 1
        x, y, w, h, encoding = struct.unpack(">HHHHi", io.read(12, timeout=15))
        assert (x, y, w, h, encoding) == (0, 0, width, height, 0)
        pixels = io.read(w * h * 4, timeout=15)
        expected = rfb.render(rfb.screen_lines(kind="VM", vmid=100, name="web-01", status="running", keys=""))
        colours = [bytes((r, g, b, 0)) for r, g, b in rfb.PALETTE]
        assert pixels == b"".join(colours[i] for i in expected)  # the guest's name, drawn by pvesim
        assert b"PVEVNC" not in bytes(io.buf) + pixels
    session = wait_for(lambda: ConsoleSession.objects.filter(guest=vm, ended_at__isnull=False).first(), timeout=15)
    assert session.user == operator and session.remote_addr == "127.0.0.1" and session.kind == "qemu"
    assert session.bytes_out > w * h * 4 and session.bytes_in > 0
    closed = AuditEntry.objects.get(action="console.close", target_id=str(vm.pk))
    assert closed.detail["bytes_out"] == session.bytes_out and closed.detail["address"] == "127.0.0.1"
    assert AuditEntry.objects.filter(action="console.open", target_id=str(vm.pk), user=operator).count() == 1


def test_container_console_echoes_a_command_and_operators_get_a_node_shell(asgi_server, sim_cluster, operator,
                                                                          monkeypatch):
    from apps.consoles import services
    from apps.nodes.models import Node

    ct = guest(sim_cluster, 200)  # dns-01
    with open_console(asgi_server, operator, f"/ws/guests/{ct.pk}/console/") as ws:
        seen = b""
        while b"root@dns-01:~# " not in seen:
            seen += ws.recv(timeout=15)
        assert not seen.startswith(b"OK") and b"PVEVNC" not in seen  # the termproxy login stayed upstream
        command = "echo console-works\r"
        ws.send(f"0:{len(command)}:{command}")
        seen = b""
        while b"console-works\r\nroot@dns-01" not in seen:
            seen += ws.recv(timeout=15)
    wait_for(lambda: ConsoleSession.objects.filter(guest=ct, ended_at__isnull=False).exists(), timeout=15)
    node = Node.objects.get(cluster=sim_cluster, name="pve1")
    monkeypatch.setattr(services, "SEEN_EVERY", 0.2)  # the relay runs in this process (asgi_server)
    with open_console(asgi_server, operator, f"/ws/nodes/{node.pk}/console/") as ws:
        seen = b""
        while b"root@pve1:~# " not in seen:
            seen += ws.recv(timeout=15)
        row = ConsoleSession.objects.get(node=node, ended_at__isnull=True)
        # Idle, the open session's row is still refreshed (it keeps counting against the limits).
        wait_for(lambda: ConsoleSession.objects.get(pk=row.pk).seen_at > row.seen_at, timeout=10)
        assert ConsoleSession.objects.get(pk=row.pk).bytes_out == len(seen)


def test_tenant_users_get_their_own_consoles_only(asgi_server, tenants, sim_cluster, pvesim, operator):
    from apps.consoles.services import tenant_console_set
    from apps.nodes.models import Node

    vm = guest(sim_cluster, 100)  # acme's
    before = _calls(pvesim.counters(), "vncproxy")
    # Another tenant's user: refused before any Proxmox call, no session recorded.
    with open_console(asgi_server, tenants["globex-member"], f"/ws/guests/{vm.pk}/console/") as ws:
        assert close_code(ws) == 4404
    assert _calls(pvesim.counters(), "vncproxy") == before
    assert not ConsoleSession.objects.exists()
    # Node shells are the operators'.
    node = Node.objects.get(cluster=sim_cluster, name="pve1")
    with open_console(asgi_server, tenants["acme-member"], f"/ws/nodes/{node.pk}/console/") as ws:
        assert close_code(ws) in (4403, 4404)
    # The owner's member opens it, until operators withhold consoles from acme: the open console
    # closes at once, and a new one is refused (audited), again before any Proxmox call.
    with open_console(asgi_server, tenants["acme-member"], f"/ws/guests/{vm.pk}/console/") as ws:
        _, _, _, name = rfb_connect(ws)
        assert b"web-01" in name
        tenant_console_set(tenant=tenants["acme"], enabled=False, user=operator)
        assert close_code(ws) == 4403
    assert not TenantConsoleSetting.objects.get(tenant=tenants["acme"]).enabled
    before = _calls(pvesim.counters(), "vncproxy")
    with open_console(asgi_server, tenants["acme-member"], f"/ws/guests/{vm.pk}/console/") as ws:
        assert close_code(ws) == 4403
    assert _calls(pvesim.counters(), "vncproxy") == before
    assert AuditEntry.objects.filter(action="guest.console", result="denied", user=tenants["acme-member"]).exists()


def test_stopped_guest_too_many_sessions_and_a_lost_connection_close_with_their_codes(
        asgi_server, sim_cluster, operator, settings, pve):
    stopped = guest(sim_cluster, 104)  # db-01, stopped
    with open_console(asgi_server, operator, f"/ws/guests/{stopped.pk}/console/") as ws:
        assert close_code(ws) == 4409
    settings.CONSOLE_SESSIONS_PER_USER = 1
    vm = guest(sim_cluster, 101)  # web-02 on pve2
    with open_console(asgi_server, operator, f"/ws/guests/{vm.pk}/console/") as first:
        rfb_connect(first)
        with open_console(asgi_server, operator, f"/ws/guests/{vm.pk}/console/") as second:
            assert close_code(second) == 4429
        pve.post("nodes/pve2/qemu/101/status/stop")  # the VM stops under the open console
        assert close_code(first, timeout=30) == 4504
    session = wait_for(lambda: ConsoleSession.objects.filter(guest=vm, ended_at__isnull=False).first(), timeout=15)
    assert "Proxmox closed" in session.end_reason


def _calls(counters: dict, word: str) -> int:
    return sum(count for key, count in _flat(counters) if word in key)


def _flat(counters):
    requests = counters.get("requests", counters)
    if isinstance(requests, dict):
        return [(str(k), v) for k, v in requests.items() if isinstance(v, int)]
    return [(f"{item.get('method')} {item.get('path')}", item.get("count", 0)) for item in requests]
