"""One card shared by many containers, against pvesim (which refuses a container's devN from every
API token, as Proxmox does): the portal writes devN with the cluster's root@pam ticket session.

Without that credential the container profile is offered with the reason it cannot be attached
yet, and every way of asking for it is refused before anything is queued; with it, 8 containers
share one card and the 9th is refused by the portal. The credential is tested by logging in,
stored encrypted and never returned."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.core.models import AuditEntry
from apps.gpus.models import GpuAllocation
from apps.gpus.placement import free_by_node
from apps.guests.models import Guest
from apps.nodes.models import Cluster
from apps.nodes.services import cluster_update
from apps.operations.models import Operation
from tests.fixtures import wait_for
from tests.guests.test_create import wait_done

from .test_allocations import CT_URL, VM_URL, VZTMPL, gpus, profile, vm_body  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

DEVICES = ["/dev/nvidia0,gid=44,mode=0666", "/dev/nvidiactl,gid=44,mode=0666", "/dev/nvidia-uvm,gid=44,mode=0666"]


def ct_body(name: str, gpu_profile: int) -> dict:
    return {"hostname": name, "ostemplate": VZTMPL, "password": "s3cret-root-pw", "storage": "ceph-rbd",
            "disk_size": 4, "cores": 1, "memory": 512, "swap": 0, "gpu_profile": gpu_profile}


def with_root_credential(cluster, operator, pvesim) -> Cluster:
    return cluster_update(cluster=cluster, user=operator, root_password=pvesim.root_password)


def ticket_logins(pvesim) -> int:
    return sum(r["count"] for r in pvesim.counters()["requests"] if r["path"] == "/access/ticket")


def test_without_the_credential_the_container_profile_says_why_and_nothing_is_queued(gpus, api, operator, client,
                                                                                     pvesim):
    shared = profile(gpus, operator, preset="shared")
    assert not gpus.has_root_credential
    why = ("L40S shared cannot be attached yet: cluster sim has no root@pam credential: Proxmox lets only root@pam "
           "itself, never an API token, pass device nodes into a container (devN). An operator enters root@pam's "
           "password in the cluster's settings (Clusters › sim › Edit)")
    # The wizard offers it, saying why it cannot be chosen yet.
    page = client.get("/guests/create/ct/").content.decode()
    assert "L40S shared — not available yet (see below)" in page
    assert "cluster sim has no root@pam credential" in page
    # The API refuses it with that reason; so does attach to an existing stopped container.
    errors = api.post(CT_URL, ct_body("infer-0", shared.pk), expect=400)["errors"]
    assert errors == {"gpu_profile": [why]}
    stopped = Guest.objects.filter(cluster=gpus, type="lxc").first()
    Guest.objects.filter(pk=stopped.pk).update(status="stopped")
    errors = api.post("/api/v1/gpu-allocations/attach/", {"guest": stopped.pk, "gpu_profile": shared.pk},
                      expect=400)["errors"]
    assert errors == {"gpu_profile": [why]}
    assert not Operation.objects.exists() and not GpuAllocation.objects.exists()
    # The operator sees what to configure: on the profile, the profile list and the cluster's page.
    page = client.get(f"/gpus/profiles/{shared.pk}/").content.decode()
    assert 'id="gpu-profile-blocked"' in page and f"/clusters/{gpus.pk}/edit/#root-credential" in page
    assert "Not available yet" in client.get("/gpus/profiles/").content.decode()
    page = client.get(f"/clusters/{gpus.pk}/").content.decode()
    credential = page[page.index('id="cluster-root-credential"'):]
    assert "not configured" in credential[:600] and "#root-credential" in credential[:600]
    assert api.get(f"/api/v1/clusters/{gpus.pk}/")["root_credential"] is False


def test_eight_containers_share_one_card_and_the_ninth_is_refused(gpus, celery_worker, api, operator, pve, pvesim):
    shared = profile(gpus, operator, preset="shared")
    cluster = with_root_credential(gpus, operator, pvesim)
    assert cluster.has_root_credential
    logins = ticket_logins(pvesim)
    ops = [api.post(CT_URL, ct_body(f"infer-{i}", shared.pk), expect=202) for i in range(8)]
    # The 9th is refused by the portal's accounting (Proxmox itself sets no limit on a shared card).
    errors = api.post(CT_URL, ct_body("infer-8", shared.pk), expect=400)["errors"]
    assert list(errors) == ["gpu_profile"]
    assert "no free L40S shared on pve1 (8 of 8 held): no container share left (8 per card)" in errors["gpu_profile"][0]
    vmids = []
    for op in ops:
        done = wait_done(op["id"], "succeeded")
        assert "gpu-devices" in done.steps_done
        assert any("as root@pam" in e.message for e in done.events.all())
        vmids.append(done.result["vmid"])
        config = pve.get(f"nodes/pve1/lxc/{done.result['vmid']}/config")
        assert [config[f"dev{i}"] for i in range(3)] == DEVICES
    held = GpuAllocation.objects.filter(profile=shared)
    # Active once each create's finish hook ran (it may come just after the operation's last event).
    wait_for(lambda: not held.exclude(state="active").exists(), timeout=30)
    assert sorted(held.values_list("vmid", flat=True)) == sorted(vmids)
    assert {(a.state, a.slots, a.device.pci_id) for a in held} == {("active", "dev0,dev1,dev2", "0000:41:00.0")}
    assert free_by_node(shared) == {"pve1": 0}
    # A VM may not take a container profile.
    errors = api.post(VM_URL, vm_body("wrong-kind", shared.pk), expect=400)["errors"]
    assert errors["gpu_profile"] == ["L40S shared is for containers"]
    assert ticket_logins(pvesim) == logins + 8  # one root@pam login per container, for its devN write only

    # A container started with its devices (pvesim stats each node like Proxmox).
    started = api.post(f"/api/v1/guests/{Guest.objects.get(cluster=gpus, vmid=vmids[0]).pk}/start/", expect=202)
    wait_done(started["id"], "succeeded")
    # Removing one container's GPU (root@pam again) frees a share: the 9th fits now.
    allocation = held.get(vmid=vmids[1])
    detach = api.post(f"/api/v1/gpu-allocations/{allocation.pk}/detach/", expect=202)
    wait_done(detach["id"], "succeeded")
    assert not any(k.startswith("dev") for k in pve.get(f"nodes/pve1/lxc/{vmids[1]}/config"))
    assert free_by_node(shared) == {"pve1": 1}
    ninth = api.post(CT_URL, ct_body("infer-8", shared.pk), expect=202)
    wait_done(ninth["id"], "succeeded")
    wait_for(lambda: held.filter(state="active").count() == 8, timeout=30)
    assert free_by_node(shared) == {"pve1": 0}


def test_a_create_whose_devices_proxmox_refuses_leaves_nothing_behind(gpus, celery_worker, api, operator, pvesim,
                                                                      pve):
    """The stored password was changed on Proxmox since: the login is refused, the new container is
    removed again, the share is free, and the error says what to do."""
    shared = profile(gpus, operator, preset="shared")
    with_root_credential(gpus, operator, pvesim)
    Cluster.objects.filter(pk=gpus.pk).update(root_password="an-old-password")
    op = api.post(CT_URL, ct_body("infer-x", shared.pk), expect=202)
    done = wait_done(op["id"], "failed")
    assert "Proxmox refused the login of root@pam (401 authentication failure)" in done.error
    assert "the root@pam credential of cluster sim no longer works" in done.error
    assert not [g for g in pve.get("cluster/resources", type="vm") if g.get("name") == "infer-x"]
    assert not GpuAllocation.objects.exists() and free_by_node(shared) == {"pve1": 8}


def test_the_credential_is_tested_encrypted_and_never_returned(gpus, api, client, operator, pvesim):
    url = f"/api/v1/clusters/{gpus.pk}/"
    errors = api.patch(url, {"root_password": "wrong-password"}, expect=400)["errors"]
    assert errors["root_password"][0].startswith("Proxmox refused the login of root@pam (401 authentication failure)")
    assert not Cluster.objects.get(pk=gpus.pk).has_root_credential
    body = api.patch(url, {"root_password": pvesim.root_password})
    assert body["root_credential"] is True and "root_password" not in body
    assert pvesim.root_password not in api.last.content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT root_password FROM nodes_cluster WHERE id = %s", [gpus.pk])
        stored = cursor.fetchone()[0]
    assert stored and pvesim.root_password not in stored  # a Fernet token, not the text
    assert Cluster.objects.get(pk=gpus.pk).root_password == pvesim.root_password
    for page in (f"/clusters/{gpus.pk}/edit/", f"/clusters/{gpus.pk}/"):
        html = client.get(page).content.decode()
        assert pvesim.root_password not in html, page
    assert "One is stored: leave empty to keep it." in client.get(f"/clusters/{gpus.pk}/edit/").content.decode()
    assert pvesim.root_password not in str(list(AuditEntry.objects.values_list("detail", flat=True)))
    # An edit without it keeps it; forgetting removes it.
    api.patch(url, {"sync_interval_idle": 30})
    assert Cluster.objects.get(pk=gpus.pk).has_root_credential
    assert api.patch(url, {"forget_root_password": True})["root_credential"] is False
    assert Cluster.objects.get(pk=gpus.pk).root_password is None
