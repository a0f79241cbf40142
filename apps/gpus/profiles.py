"""Operators' GPU profiles: save (and keep the cluster PCI mapping behind it on Proxmox), delete.

A passthrough or mdev profile's mapping lists exactly the profile's cards (one map entry per card,
node + path + vendor:device ids + IOMMU group from the inventory). The mapping is written first,
outside any transaction; the profile row only once Proxmox took it, so a refused mapping leaves
no profile, and a profile never points at a mapping Proxmox does not have."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.nodes.models import Cluster
from apps.operations.clients import client_for
from apps.permissions.models import Tenant
from apps.permissions.policy import check
from apps.proxmox import ProxmoxError
from apps.proxmox import gpus as pve_gpus

from .choices import ProfileKind
from .models import GpuDevice, GpuProfile, MdevType

MAPPING_ID = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,99}$")  # pve-configid
DEVICE_NODE = re.compile(r"^/dev/[A-Za-z0-9/_.-]+$")
MODE = re.compile(r"^0[0-7]{3}$")


def _entries(devices: list[GpuDevice]) -> list[pve_gpus.MapEntry]:
    entries = []
    for device in sorted(devices, key=lambda d: (d.node.name, d.pci_id)):
        entry: pve_gpus.MapEntry = {"node": device.node.name, "path": device.pci_id, "id": device.pci_ids}
        if device.subsystem_vendor_id and device.subsystem_device_id:
            entry["subsystem_id"] = f"{device.subsystem_vendor_id[2:]}:{device.subsystem_device_id[2:]}"
        if device.iommugroup >= 0:
            entry["iommugroup"] = device.iommugroup
        entries.append(entry)
    return entries


def clean(data: dict, *, cluster: Cluster, profile: GpuProfile | None = None) -> dict:
    """Check a profile request; returns the values to save or raises ValidationError by field."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    name = (data.get("name") or "").strip()
    if not name:
        add("name", "this field is required")
    elif GpuProfile.objects.filter(cluster=cluster, name=name).exclude(pk=getattr(profile, "pk", None)).exists():
        add("name", f"cluster {cluster} already has a profile named '{name}'")
    kind = data.get("kind") or ""
    if kind not in ProfileKind.values:
        add("kind", f"must be one of {', '.join(ProfileKind.values)}")
    if profile is not None and kind != profile.kind and profile.allocations.exists():
        add("kind", "guests hold GPUs of this profile; its kind cannot change")
    ids = [int(i) for i in data.get("devices") or [] if str(i).isdigit()]
    devices = list(GpuDevice.objects.filter(cluster=cluster, pk__in=ids).select_related("node"))
    if len(devices) != len(set(ids)) or len(ids) != len(data.get("devices") or []):
        add("devices", f"every card must be a GPU of cluster {cluster}")
    elif not devices:
        add("devices", "choose at least one card")
    tenant_ids = sorted({int(getattr(t, "pk", t)) for t in data.get("tenants") or []})
    known = set(Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", flat=True))
    if missing_tenants := [t for t in tenant_ids if t not in known]:
        add("tenants", f"no tenant with id {', '.join(map(str, missing_tenants))}")
    out = {"name": name, "kind": kind, "description": (data.get("description") or "").strip()[:300],
           "devices": devices, "tenants": tenant_ids, "q35": bool(data.get("q35", True)),
           "ovmf": bool(data.get("ovmf")), "mapping_id": "", "mdev_type": "", "device_nodes": [], "gid": None,
           "mode": "", "shares": None}
    shares = data.get("shares")
    if shares not in (None, ""):
        if not str(shares).isdigit() or not 1 <= int(shares) <= 64:
            add("shares", "must be a whole number from 1 to 64")
        else:
            out["shares"] = int(shares)
    if kind in (ProfileKind.PASSTHROUGH, ProfileKind.MDEV):
        mapping_id = (data.get("mapping_id") or "").strip()
        if not MAPPING_ID.match(mapping_id):
            add("mapping_id", "a mapping id: a letter, then letters, digits, _ or - (at most 100)")
        elif GpuProfile.objects.filter(cluster=cluster, mapping_id=mapping_id).exclude(
                pk=getattr(profile, "pk", None)).exclude(kind=kind).exists():
            add("mapping_id", f"mapping '{mapping_id}' backs a profile of another kind")
        out["mapping_id"] = mapping_id
        if kind == ProfileKind.PASSTHROUGH and out["shares"] not in (None, 1):
            add("shares", "a whole card goes to one VM")
        out["shares"] = None if kind == ProfileKind.PASSTHROUGH else out["shares"]
        if len({d.pci_ids for d in devices}) > 1:
            add("devices", "all cards of a profile must be the same model (one vendor:device id)")
    if kind == ProfileKind.MDEV:
        mdev_type = (data.get("mdev_type") or "").strip()
        offered = set(MdevType.objects.filter(device__in=devices, type=mdev_type).values_list("device_id", flat=True))
        if not mdev_type:
            add("mdev_type", "choose the mdev type (vGPU profile) the slices use")
        elif missing := [d for d in devices if d.pk not in offered]:
            add("mdev_type", f"{', '.join(f'{d.node.name} {d.pci_id}' for d in missing)} offers no '{mdev_type}'")
        out["mdev_type"] = mdev_type
    if kind == ProfileKind.LXC:
        nodes = [n.strip() for n in re.split(r"[\s,]+", data.get("device_nodes") or "") if n.strip()] \
            if isinstance(data.get("device_nodes"), str) else list(data.get("device_nodes") or [])
        if not nodes:
            add("device_nodes", "name the device nodes, e.g. /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm")
        for node in nodes:
            if not DEVICE_NODE.match(node):
                add("device_nodes", f"'{node}' is not a device path under /dev/")
        out["device_nodes"] = nodes
        if out["shares"] is None:
            add("shares", "how many containers may share one card (1-64)")
        gid = data.get("gid")
        if gid not in (None, ""):
            if not str(gid).isdigit():
                add("gid", "must be a group id (a whole number)")
            else:
                out["gid"] = int(gid)
        mode = (data.get("mode") or "").strip()
        if mode and not MODE.match(mode):
            add("mode", "an octal access mode such as 0666")
        out["mode"] = mode
        out["q35"] = out["ovmf"] = False
    if errors:
        raise ValidationError(errors)
    return out


def _write_mapping(cluster: Cluster, values: dict, old_mapping: str = "") -> None:
    """Create or update the profile's mapping on Proxmox (synchronous calls, no transaction open)."""
    entries = _entries(values["devices"])
    mdev = values["kind"] == ProfileKind.MDEV
    client = client_for(cluster.pk)
    try:
        current = pve_gpus.pci_mapping(client, values["mapping_id"])
        description = values["description"] or values["name"]
        if current is None:
            pve_gpus.pci_mapping_create(client, values["mapping_id"], entries, description=description, mdev=mdev)
        else:
            pve_gpus.pci_mapping_update(client, values["mapping_id"], entries, description=description, mdev=mdev,
                                        digest=current.get("digest"))
    except ProxmoxError as exc:
        raise ValidationError({"mapping_id": [f"Proxmox refused mapping '{values['mapping_id']}': {exc}"]}) from exc
    finally:
        client.close()


def gpu_profile_save(*, user, cluster: Cluster, data: dict, profile: GpuProfile | None = None,
                     request=None) -> GpuProfile:
    """Create or change a profile (operators: policy gpu_profile.manage). Its mapping is written on
    Proxmox first; the row only after. Raises ValidationError by field; audited."""
    check(user, "gpu_profile.manage", profile or cluster, request=request)
    values = clean(data, cluster=cluster, profile=profile)
    if values["mapping_id"]:
        _write_mapping(cluster, values)
    devices, tenants = values.pop("devices"), values.pop("tenants")
    with transaction.atomic():
        if profile is None:
            profile = GpuProfile.objects.create(cluster=cluster, **values)
        else:
            for key, value in values.items():
                setattr(profile, key, value)
            profile.save()
        profile.devices.set(devices)
        profile.tenants.set(tenants)
    audit_log(user=user, action="gpus.gpu_profile_save", target=profile, result=AuditResult.SUCCESS, request=request,
              detail={"kind": profile.kind, "mapping": profile.mapping_id, "devices": [d.pk for d in devices]})
    from .attach import allocations_adopt

    allocations_adopt(cluster)
    return profile


def gpu_profile_delete(*, user, profile: GpuProfile, request=None) -> None:
    """Delete a profile no guest holds a GPU of. Its mapping stays on Proxmox (guests configured
    outside the portal may use it)."""
    check(user, "gpu_profile.manage", profile, request=request)
    if profile.allocations.exists():
        held = profile.allocations.count()
        raise ValidationError({"profile": [f"{held} guest(s) hold GPUs of {profile.name}; remove them first"]})
    audit_log(user=user, action="gpus.gpu_profile_delete", target=profile, result=AuditResult.SUCCESS, request=request,
              detail={"name": profile.name})
    profile.delete()
