"""The warnings an HA cluster needs to show, from our tables only (no Proxmox call)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.apps import apps as django_apps

SHARED_TYPES = {"nfs", "cifs", "cephfs", "rbd", "pbs", "iscsi", "iscsidirect", "zfs", "glusterfs"}
_DISK_KEY = re.compile(r"^(scsi|virtio|sata|ide|efidisk|tpmstate|rootfs|mp)\d*$")


@dataclass
class Warning:
    level: str  # warn | bad
    text: str
    sid: str = ""


def config_storages(config: dict) -> set[str]:
    return {value.split(":", 1)[0] for key, value in (config or {}).items()
            if _DISK_KEY.match(key) and isinstance(value, str) and ":" in value and "media=cdrom" not in value}


def config_mappings(config: dict) -> set[str]:
    out = set()
    for key, value in (config or {}).items():
        if key.startswith("hostpci") and isinstance(value, str):
            m = re.search(r"(?:^|,)mapping=([^,]+)", value)
            if m:
                out.add(m.group(1))
    return out


def guest_storages(guest, resource=None) -> set[str]:
    """Storage ids holding the guest's disks: its config, else what the HA refresh read, else the
    content lists."""
    out = config_storages(guest.config) or set(getattr(resource, "storages", None) or [])
    if not out:
        StorageContent = django_apps.get_model("storage", "StorageContent")
        out = set(StorageContent.objects.filter(storage__cluster_id=guest.cluster_id, vmid=guest.vmid,
                                                content__in=("images", "rootdir"))
                  .values_list("storage__storage", flat=True))
    return out


def guest_mappings(guest, resource=None) -> set[str]:
    """PCI mapping ids the guest's hostpciN entries name (`mapping=gpu-l40s`)."""
    return config_mappings(guest.config) if guest.config else set(getattr(resource, "mappings", None) or [])


def mapping_nodes(cluster_id: int, mapping_ids: set[str]) -> dict[str, set[str]]:
    if not mapping_ids or not django_apps.is_installed("apps.gpus"):
        return {}
    PciMapping = django_apps.get_model("gpus", "PciMapping")
    return {m.mapping_id: {e.get("node") for e in (m.map or []) if isinstance(e, dict)}
            for m in PciMapping.objects.filter(cluster_id=cluster_id, mapping_id__in=mapping_ids)}


def cluster_warnings(cluster, state, resources, replicated: set[int]) -> list[Warning]:
    from apps.storage.models import Storage

    out = []
    nodes = state.expected_votes if state else cluster.nodes.count()
    if nodes and nodes < 3:
        out.append(Warning("bad", f"Only {nodes} node{'s' if nodes != 1 else ''}: HA needs at least 3 nodes so that "
                                  "the survivors of a failure still hold a majority (quorum)."))
    elif nodes and nodes % 2 == 0:
        out.append(Warning("warn", f"An even number of votes ({nodes}): a network split in two halves leaves no side "
                                   "with a majority. Add a QDevice (an external vote), unless one is configured."))
    storages = {}
    for s in Storage.objects.filter(cluster=cluster).select_related("node"):
        storages.setdefault(s.storage, s)
    for res in resources:
        guest = res.guest
        if guest is None:
            continue
        local = sorted(sid for sid in guest_storages(guest, res)
                       if sid in storages and not (storages[sid].shared or storages[sid].type in SHARED_TYPES))
        if local:
            if guest.vmid in replicated and all(storages[s].type == "zfspool" for s in local):
                out.append(Warning("warn", f"{res.sid} ({guest.name}) is on local ZFS ({', '.join(local)}), replicated: "
                                           "a failover restarts it from the last replication, losing newer writes.",
                                   res.sid))
            else:
                out.append(Warning("bad", f"{res.sid} ({guest.name}) keeps disks on local storage ({', '.join(local)}) "
                                          "without replication: if its node fails, no other node can start it.",
                                   res.sid))
        mapped = guest_mappings(guest, res)
        for mapping, where in mapping_nodes(cluster.pk, mapped).items():
            others = where - {res.node}
            if not others:
                out.append(Warning("bad", f"{res.sid} ({guest.name}) uses GPU mapping {mapping}, which exists only on "
                                          f"{', '.join(sorted(where)) or 'no node'}: a failover cannot start it elsewhere.",
                                   res.sid))
    return out
