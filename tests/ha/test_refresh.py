"""The HA refresh (beat, HA_REFRESH_INTERVAL): its Proxmox calls do not grow with the number of HA
guests once their needs (disk storages, PCI mappings) are known."""

import pytest

from apps.ha.models import HaResource
from apps.ha.services import ha_refresh
from apps.proxmox import ha as pve_ha

from .conftest import sync, sync_until

pytestmark = pytest.mark.django_db


def config_reads(pvesim) -> int:
    return sum(c["count"] for c in pvesim.counters()["requests"] if c["path"].endswith("/config"))


def test_configs_are_read_once_then_after_max_age(sim_cluster, pve, pvesim, settings):
    for sid in ("vm:101", "vm:104", "ct:201"):
        pve_ha.resource_add(pve, sid, state="started")
    sync_until(sim_cluster, lambda: HaResource.objects.filter(cluster=sim_cluster).count() == 5)
    pvesim.admin("DELETE", "/counters")
    ha_refresh(cluster=sim_cluster)
    assert config_reads(pvesim) == 5  # none of them was opened: each config is read once
    assert HaResource.objects.get(sid="ct:201").storages == ["local-zfs"]
    pvesim.admin("DELETE", "/counters")
    ha_refresh(cluster=sim_cluster)
    sync(sim_cluster)
    assert config_reads(pvesim) == 0  # known: the next refreshes read no config
    settings.HA_NEEDS_MAX_AGE = 0
    ha_refresh(cluster=sim_cluster)
    assert config_reads(pvesim) == 5  # too old: read again
