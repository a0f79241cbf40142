import json
import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.guests.models import Guest
from apps.nodes import presence
from apps.nodes.models import Cluster, Node
from apps.permissions.models import Membership, Quota, Tenant, TenantPool

pytestmark = pytest.mark.django_db


def test_demo_setup_is_idempotent(sim, tmp_path, settings, capsys):
    settings.VAR_DIR = tmp_path
    ready = tmp_path / "pvesim.json"
    ready.write_text(json.dumps(sim.info))
    call_command("demo_setup", "--pvesim", str(ready))
    first = capsys.readouterr().out
    call_command("demo_setup", "--pvesim", str(ready))
    second = capsys.readouterr().out

    cluster = Cluster.objects.get()
    assert cluster.name == "demo" and cluster.tls_mode == "pin" and cluster.fingerprint == sim.fingerprint
    assert Node.objects.filter(cluster=cluster).count() == 3
    users = get_user_model().objects
    tenant_accounts = ["acme-admin", "acme-member", "globex-admin", "globex-member"]
    assert users.get(username="operator").is_staff
    assert not users.filter(username__in=tenant_accounts, is_staff=True).exists()
    assert users.count() == 5
    # Same credentials printed both times, and they work.
    creds = json.loads((tmp_path / "demo_credentials.json").read_text())
    for username in ["operator", *tenant_accounts]:
        line = f"login: {username} / {creds[username]}"
        assert line in first and line in second
        assert users.get(username=username).check_password(creds[username])
    assert sim.token_secret not in first + second


def test_demo_setup_creates_the_demo_tenants_on_their_pools(sim, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    call_command("demo_setup", "--pvesim", str(_ready(sim, tmp_path)))
    cluster = Cluster.objects.get()
    acme, globex = Tenant.objects.get(slug="acme"), Tenant.objects.get(slug="globex")
    assert TenantPool.objects.get(tenant=acme).pool == "acme" and TenantPool.objects.get(tenant=acme).cluster == cluster
    assert TenantPool.objects.get(tenant=globex).pool == "globex"
    acme_quota = dict(Quota.objects.filter(tenant=acme).values_list("resource", "limit"))
    assert acme_quota == {"vcpus": 48, "memory": 160 * 1024**3, "disk": 1000 * 1024**3, "guests": 10,
                          "snapshots_per_guest": 5, "backups": 10}
    globex_quota = dict(Quota.objects.filter(tenant=globex).values_list("resource", "limit"))
    assert all(globex_quota[resource] < limit for resource, limit in acme_quota.items())
    roles = dict(Membership.objects.values_list("user__username", "role"))
    assert roles == {"acme-admin": "admin", "acme-member": "member", "globex-admin": "admin",
                     "globex-member": "member"}
    # The first sync already gave the guests of the pools to their tenants.
    assert Guest.objects.filter(tenant=acme).exists() and Guest.objects.filter(tenant=globex).exists()
    assert set(Guest.objects.filter(tenant=acme).values_list("pool", flat=True)) == {"acme"}


def _ready(sim, tmp_path):
    ready = tmp_path / "pvesim.json"
    ready.write_text(json.dumps(sim.info))
    return ready


def test_demo_setup_waits_for_a_sync_a_worker_is_running(sim, tmp_path, settings, capsys):
    """A worker's cycle holding the lock used to end in "first sync failed: " with no reason."""
    settings.VAR_DIR = tmp_path
    ready = _ready(sim, tmp_path)
    call_command("demo_setup", "--pvesim", str(ready))
    capsys.readouterr()
    cluster = Cluster.objects.get()
    lock = presence.lock("sync", cluster.pk, 30)
    assert lock.acquire()
    # The "worker" finishes its cycle (from another thread: the lock's token is thread-local).
    releaser = threading.Timer(2.0, presence.client().delete, [presence.key("lock", "sync", cluster.pk)])
    releaser.start()
    try:
        call_command("demo_setup", "--pvesim", str(ready))
    finally:
        releaser.join()
    out = capsys.readouterr().out
    assert "a worker is syncing cluster 'demo': waiting for it to finish" in out
    assert "cluster 'demo' at" in out and "3 nodes" in out


def test_demo_setup_says_what_happened_when_the_lock_stays_held(sim, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    ready = _ready(sim, tmp_path)
    call_command("demo_setup", "--pvesim", str(ready))
    lock = presence.lock("sync", Cluster.objects.get().pk, 30)
    assert lock.acquire()
    try:
        with pytest.raises(CommandError) as excinfo:
            call_command("demo_setup", "--pvesim", str(ready), "--wait", "1")
    finally:
        lock.release()
    assert "still holds the sync lock after 1s" in str(excinfo.value)
    assert "the cluster is registered" in str(excinfo.value)


def test_demo_setup_opens_the_ips_channel_with_pinned_host_keys(sim, tmp_path, settings, capsys):
    """IPS works on first run: the channel's key is accepted by every node, whose host key is pinned
    from pvesim's own, and a guest's IPS state is read over SSH."""
    from apps.firewall import ips
    from apps.firewall.models import NodeHost
    from apps.proxmox import nodefs

    settings.VAR_DIR = tmp_path
    ready = _ready(sim, tmp_path)
    call_command("demo_setup", "--pvesim", str(ready))
    call_command("demo_setup", "--pvesim", str(ready))  # idempotent: the same channel, re-pinned
    assert "IPS: SSH channel to 3 nodes, host keys pinned" in capsys.readouterr().out
    cluster = Cluster.objects.get()
    channel = ips.channel_of(cluster)
    assert not channel.trust_on_first_use
    hosts = {h.node: h for h in NodeHost.objects.filter(channel=channel)}
    assert {node: (h.port, h.host_key) for node, h in hosts.items()} == {
        node: (listener["port"], nodefs.normalize_host_key(listener["host_key"])) for node, listener in sim.ssh.items()}
    operator = get_user_model().objects.get(username="operator")
    state = ips.ips_read(user=operator, guest=Guest.objects.get(cluster=cluster, vmid=100))
    assert state.available and not state.error, state
