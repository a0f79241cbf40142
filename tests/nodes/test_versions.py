"""Each node's Proxmox VE version is recorded off the sync cycle and shown; the cycle keeps its
three calls."""

import pytest

from apps.nodes import sync, versions
from apps.nodes.models import Cluster, Node

pytestmark = pytest.mark.django_db


def test_versions_are_read_once_then_only_when_due(cluster, sim):
    sync.run_cycle(cluster.pk)
    nodes = list(Node.objects.filter(cluster=cluster))
    assert versions.versions_due(nodes)  # new nodes have no version yet

    read = versions.refresh_versions(cluster.pk)
    expected = sim.api().version.get()["version"]
    assert set(read) == {"pve1", "pve2", "pve3"} and set(read.values()) == {expected}
    assert set(Node.objects.filter(cluster=cluster).values_list("pve_version", flat=True)) == {expected}
    assert Cluster.objects.get(pk=cluster.pk).pve_version == expected

    assert not versions.versions_due(list(Node.objects.filter(cluster=cluster)))
    assert versions.refresh_versions(cluster.pk) == {}  # nothing due: no call


def test_the_node_page_shows_the_version(cluster, sim, client):
    sync.run_cycle(cluster.pk)
    versions.refresh_versions(cluster.pk)
    node = Node.objects.get(cluster=cluster, name="pve1")
    page = client.get(node.get_absolute_url()).content.decode()
    assert "Proxmox VE" in page and node.pve_version in page


def test_bridges_are_recorded_and_offered_by_the_create_wizard(cluster, sim, operator):
    from apps.guests.actions.create import known_bridges

    sync.run_cycle(cluster.pk)
    versions.refresh_versions(cluster.pk)
    expected = {i["iface"] for i in sim.api().nodes("pve1").network.get() if i.get("type") in ("bridge", "OVSBridge")}
    assert expected and set(Node.objects.get(cluster=cluster, name="pve1").bridges) == expected
    assert expected <= set(known_bridges(operator))
