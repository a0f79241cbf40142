"""The Proxmox client against pvesim over real HTTPS: auth, TLS modes, typed errors, metrics."""

import socket

import pytest

from apps.proxmox import (
    ProxmoxAuthError,
    ProxmoxError,
    ProxmoxNotFound,
    ProxmoxPermissionError,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    ProxmoxValidationError,
    connect,
    fetch_fingerprint,
    metrics,
    normalize_fingerprint,
)

AUDITOR_TOKEN = ("auditor@pve!monitoring", "3f1a6c1e-7b7e-4d0c-9a51-0d2f6b1e9a00")  # demo scenario
BAD_UPID = "UPID:pve1:0003A1F2:01B3C4D5:67A0B1C2:qmstart:100:root@pam:"


def client(pvesim, **overrides):
    options = dict(url=pvesim.url, token_id=pvesim.token_id, token_secret=pvesim.token_secret,
                   fingerprint=pvesim.fingerprint)
    options.update(overrides)
    return connect(**options)


def requests_served(pvesim) -> int:
    return pvesim.admin("GET", "/counters")["total"]


def test_pinned_fingerprint_and_good_token_read_the_cluster(pvesim):
    pve = client(pvesim)
    assert pve.tls_mode == "pin"
    assert pve.version()["release"].startswith("9.")
    status = pve.cluster_status()
    assert any(item["type"] == "node" for item in status)
    resources = pve.cluster_resources()
    assert {"node", "qemu", "storage"} <= {item["type"] for item in resources}
    assert all(item["type"] == "qemu" for item in pve.cluster_resources(type="vm") if item["id"].startswith("qemu/"))


def test_fetch_fingerprint_returns_the_served_certificate(pvesim):
    assert fetch_fingerprint(pvesim.url) == normalize_fingerprint(pvesim.fingerprint)


def test_bad_token_is_an_auth_error(pvesim):
    with pytest.raises(ProxmoxAuthError) as info:
        client(pvesim, token_secret="00000000-0000-0000-0000-000000000000").version()
    assert info.value.status == 401
    assert info.value.message == "Authentication failed!"


def test_wrong_fingerprint_fails_before_any_request_reaches_the_server(pvesim):
    wrong = "AB" * 32
    before = requests_served(pvesim)
    with pytest.raises(ProxmoxTLSError) as info:
        client(pvesim, fingerprint=wrong).version()
    error = info.value
    assert error.expected == normalize_fingerprint(wrong)
    assert error.actual == normalize_fingerprint(pvesim.fingerprint)
    assert error.expected in str(error) and error.actual in str(error)
    assert requests_served(pvesim) == before


def test_insecure_mode_skips_verification(pvesim):
    pve = client(pvesim, fingerprint=None, verify=False)
    assert pve.tls_mode == "insecure"
    assert pve.version()["version"]


def test_verify_mode_uses_the_given_ca_and_refuses_an_unknown_one(pvesim):
    assert client(pvesim, fingerprint=None, verify=pvesim.cert).version()["version"]
    with open(pvesim.cert) as pem:  # PEM text (as a Cluster stores it) works like a path
        assert client(pvesim, fingerprint=None, verify=pem.read()).version()["version"]
    with pytest.raises(ProxmoxTLSError, match="certificate verify failed"):
        client(pvesim, fingerprint=None, verify=True).version()


def test_connection_refused_is_unreachable():
    with socket.socket() as sock:  # a port that was free a moment ago and nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pve = connect(url=f"https://127.0.0.1:{port}", token_id="root@pam!x", token_secret="x", verify=False)
    with pytest.raises(ProxmoxUnreachable, match=f"connection refused by 127.0.0.1:{port}"):
        pve.version()
    with pytest.raises(ProxmoxUnreachable):
        fetch_fingerprint(f"https://127.0.0.1:{port}", timeout=2)


def test_dns_failure_is_unreachable():
    pve = connect(url="https://pve.does-not-exist.invalid:8006", token_id="root@pam!x", token_secret="x",
                  verify=False, timeout=5)
    with pytest.raises(ProxmoxUnreachable, match="DNS lookup failed for 'pve.does-not-exist.invalid'"):
        pve.version()


def test_missing_privilege_is_parsed_from_the_403(pvesim):
    auditor = client(pvesim, token_id=AUDITOR_TOKEN[0], token_secret=AUDITOR_TOKEN[1])
    with pytest.raises(ProxmoxPermissionError) as info:
        auditor.put("cluster/options", keyboard="en-us")
    assert info.value.status == 403
    assert info.value.message == "Permission check failed (/, Sys.Modify)"
    assert (info.value.path, info.value.privilege) == ("/", "Sys.Modify")


def test_parameter_errors_carry_the_field_map(pvesim):
    pve = client(pvesim)
    with pytest.raises(ProxmoxValidationError) as info:
        pve.task_status("pve1", "not-a-upid")
    assert info.value.errors == {"upid": "unable to parse worker upid"}
    with pytest.raises(ProxmoxValidationError) as info:
        pve.task_status("pve1", BAD_UPID)
    assert info.value.errors == {"upid": "no such task"}
    assert "upid: no such task" in str(info.value)


def test_handler_error_keeps_proxmox_message_and_unknown_path_is_not_found(pvesim):
    pve = client(pvesim)
    with pytest.raises(ProxmoxError) as info:
        pve.get("nodes/nosuchnode/tasks")
    assert info.value.status == 500
    assert info.value.message.startswith("hostname lookup 'nosuchnode' failed")
    with pytest.raises(ProxmoxNotFound) as info:
        pve.get("nodes/pve1/no-such-endpoint")
    assert info.value.status == 501


def test_offline_node_answers_595_unreachable(pvesim):
    pve = client(pvesim)
    pvesim.admin("POST", "/nodes/pve3/power", state="off")
    try:
        with pytest.raises(ProxmoxUnreachable) as info:
            pve.get("nodes/pve3/tasks")
        assert info.value.status == 595
    finally:
        pvesim.admin("POST", "/nodes/pve3/power", state="on")


def test_booleans_are_sent_as_1_and_0(pvesim):
    # pvesim, like Proxmox, answers 400 "type check ('boolean') failed - got 'True'" otherwise.
    assert isinstance(client(pvesim).get("nodes/pve1/tasks", errors=True, limit=5), list)


def test_calls_are_counted_per_method_and_path_template(pvesim):
    pve = client(pvesim)
    key = ("GET", "/nodes/{node}/tasks/{upid}/status")
    before = metrics.call_counts().get(key, 0)
    errors_before = metrics.error_counts().get(key, 0)
    for _ in range(2):
        with pytest.raises(ProxmoxValidationError):
            pve.task_status("pve1", BAD_UPID)
    assert metrics.call_counts()[key] == before + 2
    assert metrics.error_counts()[key] == errors_before + 2
    assert any('path="/nodes/{node}/tasks/{upid}/status"' in line for line in metrics.prometheus_lines())


def test_a_server_slower_than_the_timeout_is_unreachable(pvesim):
    pvesim.admin("POST", "/faults/latency", seconds=3)
    try:
        with pytest.raises(ProxmoxUnreachable, match="timed out talking to 127.0.0.1"):
            client(pvesim, timeout=0.5).version()
    finally:
        pvesim.admin("POST", "/faults/clear")
