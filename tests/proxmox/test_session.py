"""The root@pam ticket session (apps.proxmox.session) against pvesim over real HTTPS: the password
goes only through the pinned transport, the write carries ticket and CSRF token, and the devN
gateway function refuses anything but a root@pam ticket session and devN keys."""

import pytest

from apps.proxmox import GuestRef, ProxmoxAuthError, ProxmoxPermissionError, ProxmoxTLSError, connect, gpus, session
from tests.fixtures import pve  # noqa: F401  (a fresh scenario)


def ticket_requests(pvesim) -> int:
    return sum(r["count"] for r in pvesim.counters()["requests"] if r["path"] == "/access/ticket")


def root(pvesim, **overrides):
    options = dict(url=pvesim.url, username="root@pam", password=pvesim.root_password,
                   fingerprint=pvesim.fingerprint)
    options.update(overrides)
    return session.login(**options)


def test_a_root_ticket_session_writes_a_containers_devn_that_the_token_may_not(pvesim, pve):
    ct = GuestRef("pve1", "lxc", 200)
    token = connect(url=pvesim.url, token_id=pvesim.token_id, token_secret=pvesim.token_secret,
                    fingerprint=pvesim.fingerprint)
    with pytest.raises(ProxmoxPermissionError) as refused:
        token.put(f"{ct.path}/config", dev0="/dev/nvidia0")
    assert refused.value.message == (
        "Permission check failed (configuring device passthrough is only allowed for root@pam)")
    with root(pvesim) as client:
        assert client.is_root and client.tls_mode == "pin"
        gpus.set_container_devices(client, ct, values={"dev0": "/dev/nvidia0,gid=44,mode=0666"})
        config = token.get(f"{ct.path}/config")
        assert config["dev0"] == "/dev/nvidia0,gid=44,mode=0666"
        gpus.set_container_devices(client, ct, delete=["dev0"], digest=config["digest"])
    assert "dev0" not in token.get(f"{ct.path}/config")
    token.close()


def test_the_password_never_leaves_on_a_wrong_fingerprint(pvesim):
    before = ticket_requests(pvesim)
    with pytest.raises(ProxmoxTLSError):
        root(pvesim, fingerprint="AB" * 32)
    assert ticket_requests(pvesim) == before  # refused at the handshake: no login request was read


def test_a_wrong_password_is_an_auth_error_naming_the_user(pvesim):
    with pytest.raises(ProxmoxAuthError) as info:
        root(pvesim, password="not-the-password")
    assert info.value.status == 401
    assert str(info.value) == "Proxmox refused the login of root@pam (401 authentication failure)"
    with pytest.raises(session.CredentialMissing):
        root(pvesim, password="")


def test_the_devn_write_takes_only_devn_keys_and_only_a_root_ticket(pvesim):
    ct, vm = GuestRef("pve1", "lxc", 200), GuestRef("pve1", "qemu", 101)
    token = connect(url=pvesim.url, token_id=pvesim.token_id, token_secret=pvesim.token_secret,
                    fingerprint=pvesim.fingerprint)
    before = pvesim.counters()["total"]
    with pytest.raises(ValueError, match="root@pam ticket session"):
        gpus.set_container_devices(token, ct, values={"dev0": "/dev/nvidia0"})
    with root(pvesim) as client:
        with pytest.raises(ValueError, match="only devN keys"):
            gpus.set_container_devices(client, ct, values={"dev0": "/dev/nvidia0", "memory": "1024"})
        with pytest.raises(ValueError, match="container key"):
            gpus.set_container_devices(client, vm, values={"dev0": "/dev/nvidia0"})
    assert pvesim.counters()["total"] == before + 1  # the login only
    token.close()
