"""Giving guests GPUs: attach and detach as operations, the create wizard's GPU profile, quota
usage per profile, and settling allocations when operations end or guests go.

Attach = one transaction: operation row + card allocation (placement, card rows locked) + the
tenant's "gpu:<profile id>" quota; then the worker writes `hostpciN` / `devN` (and q35/OVMF where
the profile says so) in one config PUT. Nothing is written to Proxmox for a refused request.

A container's `devN` is written with the cluster's root@pam ticket session (Proxmox refuses it
from any API token); without that credential a container profile is offered with the reason it
cannot be given yet, and refused before anything is queued.

Attach and detach run in steps (`config`, then `sync` / `release`), each idempotent (the config
is read first and compared), so a run whose worker died is resumed by the reconciler from its
step: the allocation row is the one made with the operation, never a second one."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver

from apps.guests import quotas as guest_quotas
from apps.guests.choices import GuestStatus, GuestType
from apps.guests.models import Guest
from apps.operations.clients import client_for
from apps.operations.models import Operation
from apps.operations.services import (
    OperationReporter,
    operation_create,
    operation_step,
    operation_step_done,
    run_operation,
)
from apps.operations.signals import operation_finished
from apps.permissions.models import Reservation
from apps.permissions.policy import check
from apps.proxmox import GuestRef, ProxmoxError
from apps.proxmox import explain as proxmox_explain
from apps.proxmox import gpus as pve_gpus
from apps.proxmox import guests as pve_guests

from .choices import AllocationState, ProfileKind
from .models import GpuAllocation, GpuProfile, PciMapping
from .placement import FIELD, allocation_reserve, free_by_node, refusals_by_node

logger = logging.getLogger(__name__)
KINDS = ("gpu.attach", "gpu.detach")


class GpuError(ProxmoxError):
    """Attach/detach could not be done on Proxmox; the message says what and what to do."""


# -- profiles as a guest sees them -----------------------------------------------------------------

def offered_profiles(*, user, cluster_id: int | None = None, kind: str | None = None):
    """Profiles `user` may choose: operators every profile, tenant users those offered to their
    tenant (GpuProfile's scope rule). `kind` = qemu | lxc narrows to what fits that guest."""
    from .selectors import gpu_profile_list

    profiles = gpu_profile_list(user=user)
    if cluster_id is not None:
        profiles = profiles.filter(cluster_id=cluster_id)
    if kind == "lxc":
        profiles = profiles.filter(kind=ProfileKind.LXC)
    elif kind == "qemu":
        profiles = profiles.exclude(kind=ProfileKind.LXC)
    return profiles


def blocker(profile: GpuProfile) -> str:
    """Why a GPU of `profile` cannot be given at all now ('' when it can): a container profile
    needs the cluster's root@pam credential, since Proxmox sets a container's devN for root@pam
    alone. Database only."""
    if profile.kind != ProfileKind.LXC or profile.cluster.has_root_credential:
        return ""
    from apps.nodes.services import root_credential_missing_text

    return f"{profile.name} cannot be attached yet: {root_credential_missing_text(profile.cluster)}"


def _profile_for(user, value, *, cluster_id: int, kind: str) -> GpuProfile:
    """The profile a request names (id), checked: offered to the user, of this cluster and kind."""
    try:
        pk = int(value)
    except (TypeError, ValueError):
        raise ValidationError({FIELD: [f"'{value}' is not a GPU profile id"]}) from None
    profile = offered_profiles(user=user).filter(pk=pk).first()
    if profile is None:
        raise ValidationError({FIELD: [f"no GPU profile {pk} is offered to you"]})
    if profile.cluster_id != cluster_id:
        raise ValidationError({FIELD: [f"{profile.name} is a profile of another cluster"]})
    if profile.guest_type != kind:
        what = "containers" if profile.guest_type == "lxc" else "VMs"
        raise ValidationError({FIELD: [f"{profile.name} is for {what}"]})
    if why := blocker(profile):
        raise ValidationError({FIELD: [why]})
    return profile


def profile_settings(profile: GpuProfile, config: dict, *, storage: str = "") -> tuple[dict, list[str]]:
    """The config keys that give a guest with `config` one GPU of `profile`, and the slots used."""
    if profile.kind == ProfileKind.LXC:
        slots = pve_gpus.free_slots(config, "lxc", len(profile.device_nodes))
        if len(slots) < len(profile.device_nodes):
            raise ValidationError({FIELD: ["the container has no free devN slot left"]})
        return ({slot: pve_gpus.lxc_dev_value(path=path, gid=profile.gid, mode=profile.mode)
                 for slot, path in zip(slots, profile.device_nodes)}, slots)
    slots = pve_gpus.free_slots(config, "qemu")
    if not slots:
        raise ValidationError({FIELD: ["the VM has no free hostpci slot left (16 in use)"]})
    settings = {slots[0]: pve_gpus.hostpci_value(mapping=profile.mapping_id, pcie=profile.q35,
                                                  mdev=profile.mdev_type if profile.kind == ProfileKind.MDEV else "")}
    if profile.q35 and not pve_gpus.is_q35(config):
        settings["machine"] = "q35"
    if profile.ovmf and config.get("bios") != "ovmf":
        settings["bios"] = "ovmf"
        if storage and not config.get("efidisk0"):
            settings["efidisk0"] = f"{storage}:1,efitype=4m,pre-enrolled-keys=1"
    return settings, slots[:1]


def _reserve_quota(operation: Operation, profile: GpuProfile, tenant_id) -> None:
    guest_quotas.reserve(operation, {profile.quota_resource: 1}, fields={profile.quota_resource: FIELD},
                         tenant=tenant_id)


def gpu_usage(tenant, resource: str) -> int:
    """Quota usage of "gpu:<profile id>": the tenant's allocations, except those whose operation
    still holds the quota reservation (they count as reserved until it ends)."""
    profile_id = resource.split(":", 1)[1]
    if not profile_id.isdigit():
        return 0
    in_flight = Reservation.objects.filter(state="reserved", resource=resource).values("operation_id")
    return GpuAllocation.objects.filter(tenant=tenant, profile_id=int(profile_id)).exclude(
        operation_id__in=in_flight).count()


# -- the create wizard / API's gpu_profile --------------------------------------------------------

class CreateExtension:
    """Registered with apps.guests.actions.create.extensions: `gpu_profile` in a create request."""

    DEVICES_STEP = "gpu-devices"

    def form_field(self, *, user, kind):
        profiles = list(offered_profiles(user=user, kind=kind).select_related("cluster"))
        if not profiles:
            return None
        choices, notes = [], []
        for profile in profiles:
            free = sum(free_by_node(profile).values())
            where = f" ({profile.cluster.name})" if len({p.cluster_id for p in profiles}) > 1 else ""
            if why := blocker(profile):
                choices.append((str(profile.pk), f"{profile.name}{where} — not available yet (see below)"))
                notes.append(why)
            else:
                choices.append((str(profile.pk), f"{profile.name} — {free} free{where}"))
        help_text = " ".join(["the guest goes to a node with a free card of this profile.", *notes])
        return (FIELD, "GPU", [("", "— no GPU —"), *choices], help_text)

    def plan(self, *, user, cluster, data, kind, errors):
        from apps.guests.actions.create.extensions import Extra
        from apps.nodes.models import Node

        value = data.get(FIELD)
        if value in (None, ""):
            return None
        try:
            profile = _profile_for(user, value, cluster_id=cluster.pk, kind=kind)
        except ValidationError as exc:
            for message in exc.message_dict[FIELD]:
                errors.add(FIELD, message)
            return None
        nodes = list(Node.objects.filter(cluster=cluster).order_by("name").values_list("name", flat=True))
        free = {node: n for node, n in free_by_node(profile).items() if n > 0}
        refused = refusals_by_node(profile, nodes)
        if not free:
            errors.add(FIELD, f"no node has a free {profile.name}: " + "; ".join(refused[n] for n in sorted(refused))
                       if refused else f"{profile.name} has no cards yet")
            return Extra(allowed_nodes=set(), refusals=refused, reported=True)
        notes = {node: f"{n} free {profile.name}" for node, n in free.items()}
        where = ", ".join(f"{node} ({n} free)" for node, n in sorted(free.items()))
        if profile.kind == ProfileKind.LXC:  # devN: written as root@pam once the container exists
            return Extra(allowed_nodes=set(free), refusals=refused, notes=notes, plan={FIELD: profile.pk},
                         review=[("GPU", f"{profile.name}: {where}; device nodes {' '.join(profile.device_nodes)} "
                                         "are set as root@pam once the container exists")])
        settings, _ = profile_settings(profile, {}, storage=(data.get("storage") or "").strip())
        return Extra(allowed_nodes=set(free), refusals=refused, notes=notes, settings=settings,
                     plan={FIELD: profile.pk}, review=[("GPU", f"{profile.name}: {where}")])

    def reserve(self, *, operation, plan, vmid, node):
        profile_id = (plan.get("extensions") or {}).get(FIELD)
        if not profile_id:
            return
        from apps.nodes.models import Node

        profile = GpuProfile.objects.get(pk=profile_id)
        node_row = Node.objects.get(cluster_id=plan["cluster_id"], name=node)
        # Quota first (tenant row, then quota rows), then the card rows: one lock order everywhere.
        _reserve_quota(operation, profile, operation.tenant_id)
        allocation_reserve(profile=profile, node=node_row, vmid=vmid, guest_name=plan.get("name") or "",
                           tenant_id=operation.tenant_id, operation_id=operation.pk)
        transaction.on_commit(lambda: push_for(profile.cluster_id))  # the map shows the guest at once

    def create_steps(self, plan):
        if plan.get("type") == "lxc" and (plan.get("extensions") or {}).get(FIELD):
            return [(self.DEVICES_STEP, "GPU device nodes (set as root@pam)")]
        return []

    def run_create_step(self, step, *, operation, reporter, client, plan, vmid):
        """The new container's devN, as root@pam; idempotent (a config holding them is left as is)."""
        allocation = GpuAllocation.objects.select_related("profile__cluster", "device__node").get(
            operation_id=operation.pk, vmid=vmid)
        ref = GuestRef(plan["node"], "lxc", vmid)
        slots = _give(client, ref, allocation, reporter, label=f"CT {vmid} ({plan.get('name', '')})")
        GpuAllocation.objects.filter(pk=allocation.pk).update(slots=",".join(slots))


# -- migration targets ----------------------------------------------------------------------------

class MigrateExtension:
    """Registered with apps.guests.actions.migrate.extensions: a guest holding GPUs may go only to
    nodes with a free card of each of its profiles, and live only where the card can move live
    (never a whole passed-through card; an mdev only if its mapping is `live-migration-capable`)."""

    def targets(self, *, guest, running, nodes):
        from apps.guests.actions.migrate.extensions import Refusals

        allocations = list(GpuAllocation.objects.filter(cluster_id=guest.cluster_id, vmid=guest.vmid)
                           .select_related("profile").order_by("profile__name"))
        if not allocations:
            return None
        out = Refusals()
        for allocation in allocations:
            profile = allocation.profile
            free = free_by_node(profile)
            for node in nodes:
                if free.get(node, 0) < 1:
                    out.nodes.setdefault(node, []).append(f"no free card of GPU profile '{profile.name}' on {node}")
            if not running or guest.type != GuestType.QEMU:
                continue  # containers move in restart mode; a stopped VM moves offline
            if profile.kind == ProfileKind.PASSTHROUGH:
                out.blockers.append(f"it is running with the whole GPU of profile '{profile.name}' passed "
                                    "through, which cannot be live-migrated; shut it down to migrate it offline")
            elif profile.kind == ProfileKind.MDEV:
                mapping = PciMapping.objects.filter(cluster_id=guest.cluster_id, mapping_id=profile.mapping_id).first()
                if mapping is None or not mapping.live_migration_capable:
                    out.blockers.append(f"it is running with a vGPU of profile '{profile.name}' whose mapping "
                                        f"'{profile.mapping_id}' is not marked live-migration-capable; shut it "
                                        "down to migrate it offline")
        return out


# -- attach / detach ------------------------------------------------------------------------------

def _check_stopped(guest: Guest, what: str) -> None:
    if guest.status != GuestStatus.STOPPED:
        state = guest.get_status_display().lower()
        raise ValidationError({FIELD: [f"{guest.kind} {guest} is {state}; stop it to {what} a GPU"]})
    if guest.template:
        raise ValidationError({FIELD: [f"{guest} is a template; GPUs go on the guests made from it"]})
    if guest.node_id is None:
        raise ValidationError({FIELD: [f"the node of {guest} is not known yet; wait for the next sync"]})


def gpu_attach(*, guest: Guest, user, profile_id) -> Operation:
    """Queue giving `guest` (stopped) one GPU of the profile, as operation `gpu.attach`.

    Atomic: operation, card allocation on the guest's node and the tenant's GPU quota commit
    together or not at all. Raises NotVisible/Denied (policy guest.config) and ValidationError
    {"gpu_profile": ...} (not offered, wrong kind, no free card on the node, over quota)."""
    check(user, "guest.config", guest)
    _check_stopped(guest, "add")
    profile = _profile_for(user, profile_id, cluster_id=guest.cluster_id, kind=guest.type)
    with transaction.atomic():
        operation = operation_create(
            kind="gpu.attach", user=user, task_name="gpus.gpu_attach", cluster_id=guest.cluster_id, target=guest,
            kwargs={"guest_id": guest.pk, "profile_id": profile.pk},
            title=f"Add GPU {profile.name} to {guest.kind} {guest}", tenant=guest.tenant_id)
        _reserve_quota(operation, profile, guest.tenant_id)  # before the card rows, as at create
        allocation = allocation_reserve(profile=profile, node=guest.node, vmid=guest.vmid, guest_name=guest.name,
                                        tenant_id=guest.tenant_id, operation_id=operation.pk)
        Operation.objects.filter(pk=operation.pk).update(task_kwargs={**operation.task_kwargs,
                                                                      "allocation_id": allocation.pk})
        operation.task_kwargs["allocation_id"] = allocation.pk
        transaction.on_commit(lambda: push_for(guest.cluster_id))
    return operation


def gpu_detach(*, allocation: GpuAllocation, user) -> Operation:
    """Queue removing the allocation's GPU from its (stopped) guest, as operation `gpu.detach`;
    the card is free once the config no longer holds it."""
    guest = Guest.objects.select_related("node").filter(cluster_id=allocation.cluster_id, vmid=allocation.vmid).first()
    if guest is None:
        raise ValidationError({FIELD: [f"guest {allocation.vmid} is not in the inventory"]})
    check(user, "guest.config", guest)
    _check_stopped(guest, "remove")
    if why := blocker(allocation.profile):
        raise ValidationError({FIELD: [why.replace("cannot be attached yet", "cannot be removed yet", 1)]})
    if allocation.state != AllocationState.ACTIVE:
        raise ValidationError({FIELD: ["this GPU is still being given to the guest; wait for that to end"]})
    with transaction.atomic():
        locked = GpuAllocation.objects.select_for_update().filter(pk=allocation.pk, state=AllocationState.ACTIVE)
        if not locked.exists():
            raise ValidationError({FIELD: ["this GPU is already being removed"]})
        operation = operation_create(
            kind="gpu.detach", user=user, task_name="gpus.gpu_detach", cluster_id=guest.cluster_id, target=guest,
            kwargs={"allocation_id": allocation.pk},
            title=f"Remove GPU {allocation.profile.name} from {guest.kind} {guest}", tenant=guest.tenant_id)
        locked.update(operation_id=operation.pk, state=AllocationState.RESERVED)
    return operation


def _slots_holding(profile: GpuProfile, config: dict, kind: str) -> list[str]:
    slots = pve_gpus.gpu_slots(config, kind)
    if profile.kind == ProfileKind.LXC:
        return [s.key for s in slots if s.path in profile.device_nodes]
    return [s.key for s in slots if s.mapping == profile.mapping_id and s.mdev == (
        profile.mdev_type if profile.kind == ProfileKind.MDEV else "")]


def _give(client, ref: GuestRef, allocation: GpuAllocation, reporter: OperationReporter, *, label: str) -> list[str]:
    """Write the allocation's GPU into the guest's config unless it already holds it (a resumed or
    retried run): `hostpciN` (+ q35/OVMF) with the cluster's token, a container's `devN` with its
    root@pam ticket session. Returns the slots holding it. Raises GpuError."""
    profile = allocation.profile
    config, digest = pve_guests.config(client, ref)
    present = _slots_holding(profile, config, ref.kind)
    if present:
        reporter.event(f"{', '.join(present)} of {label} already holds {profile.name} (an earlier run wrote it)",
                       progress=80)
        return present
    try:
        settings, slots = profile_settings(profile, config)
    except ValidationError as exc:
        raise GpuError(f"Could not give {label} its GPU: " + "; ".join(exc.message_dict[FIELD])) from exc
    what = ", ".join(f"{k}: {v}" for k, v in settings.items())
    try:
        if profile.kind == ProfileKind.LXC:
            from apps.nodes.services import cluster_root_client

            reporter.event(f"Writing {what} as root@pam (Proxmox lets root@pam alone pass device nodes into a "
                           "container)", progress=40)
            root = cluster_root_client(profile.cluster)
            try:
                pve_gpus.set_container_devices(root, ref, values=settings, digest=digest)
            finally:
                root.close()
        else:
            reporter.event(f"Writing {what}", progress=40)
            pve_guests.update_config(client, ref, digest=digest, **settings)
    except ProxmoxError as exc:
        raise GpuError(proxmox_explain.explain(f"Could not give {label} its GPU {profile.name}", exc),
                       status=exc.status) from exc
    reporter.event(f"{label} has {profile.name} on {allocation.device.node.name} {allocation.device.pci_id}",
                   progress=85)
    return slots


def _take_away(client, ref: GuestRef, allocation: GpuAllocation, reporter: OperationReporter, *,
               label: str) -> list[str]:
    """Remove the allocation's slots from the guest's config, those still there only (idempotent).
    A container's devN goes with the root@pam session. Returns what was removed. Raises GpuError."""
    profile = allocation.profile
    config, digest = pve_guests.config(client, ref)
    wanted = [s for s in allocation.slots.split(",") if s] or _slots_holding(profile, config, ref.kind)
    present = [s for s in wanted if s in config]
    if not present:
        reporter.event(f"{label} no longer holds {profile.name} in its configuration", progress=60)
        return []
    reporter.event(f"Removing {', '.join(present)} from {label}", progress=40)
    try:
        if profile.kind == ProfileKind.LXC:
            from apps.nodes.services import cluster_root_client

            root = cluster_root_client(profile.cluster)
            try:
                pve_gpus.set_container_devices(root, ref, delete=present, digest=digest)
            finally:
                root.close()
        else:
            pve_guests.update_config(client, ref, digest=digest, delete=present)
    except ProxmoxError as exc:
        raise GpuError(proxmox_explain.explain(f"Could not remove the GPU {profile.name} of {label}", exc),
                       status=exc.status) from exc
    return present


def _refresh(guest: Guest, client) -> None:
    from apps.guests.services import guest_refresh

    try:
        guest_refresh(guest=guest, client=client)
    except ProxmoxError as exc:  # the change is made; the page re-reads the details
        logger.info("refresh of %s after a GPU change: %s", guest.vmid, exc)


def run_attach(operation: Operation, reporter: OperationReporter, *, guest_id: int, profile_id: int,
               allocation_id: int | None = None) -> dict:
    """Worker: step `config` writes the GPU keys (unless the config holds them already), step
    `sync` makes the allocation active and re-reads the guest. A resumed run repeats only what
    is not done, on the allocation made with the operation."""
    guest = Guest.objects.select_related("node", "cluster").get(pk=guest_id)
    allocation = GpuAllocation.objects.select_related("profile__cluster", "device__node").get(
        operation_id=operation.pk)
    label = f"{guest.kind} {guest}"
    client = client_for(guest.cluster_id)
    try:
        if not operation_step(operation, "config"):
            reporter.event(f"Reading the configuration of {label}", progress=10)
            slots = _give(client, guest.ref, allocation, reporter, label=label)
            GpuAllocation.objects.filter(pk=allocation.pk).update(slots=",".join(slots))
            operation_step_done(operation, "config")
        if not operation_step(operation, "sync"):
            # The config holds it now: active at once (the finish hook only confirms it).
            GpuAllocation.objects.filter(pk=allocation.pk).update(state=AllocationState.ACTIVE)
            _refresh(guest, client)
            operation_step_done(operation, "sync")
        allocation.refresh_from_db(fields=["slots"])
        return {"slots": [s for s in allocation.slots.split(",") if s], "device": allocation.device.pci_id,
                "node": allocation.device.node.name}
    finally:
        client.close()


def run_detach(operation: Operation, reporter: OperationReporter, *, allocation_id: int) -> dict:
    """Worker: step `config` removes the GPU keys still in the config, step `release` frees the
    card (deletes the allocation) and re-reads the guest. Resumable like run_attach."""
    allocation = GpuAllocation.objects.select_related("profile__cluster", "device__node").filter(
        pk=allocation_id).first()
    if allocation is None:
        if "config" in (operation.steps_done or []):  # an earlier run released it already
            reporter.event("The card was already freed by an earlier run", progress=90)
            return {"removed": []}
        raise GpuError("this GPU allocation no longer exists (its guest was deleted, or it was removed meanwhile)")
    guest = Guest.objects.select_related("node", "cluster").get(cluster_id=allocation.cluster_id,
                                                                 vmid=allocation.vmid)
    label = f"{guest.kind} {guest}"
    client = client_for(guest.cluster_id)
    try:
        removed = (operation.result or {}).get("removed", [])
        if not operation_step(operation, "config"):
            removed = _take_away(client, guest.ref, allocation, reporter, label=label)
            Operation.objects.filter(pk=operation.pk).update(result={"removed": removed})
            operation_step_done(operation, "config")
        if not operation_step(operation, "release"):
            GpuAllocation.objects.filter(pk=allocation.pk).delete()  # the config no longer holds it
            reporter.event(f"{allocation.profile.name} removed; the card is free again", progress=85)
            _refresh(guest, client)
            operation_step_done(operation, "release")
        return {"removed": removed}
    finally:
        client.close()


def gpu_attach_task(operation_id: str, guest_id: int, profile_id: int, allocation_id: int | None = None,
                    resume_token: str | None = None) -> None:
    run_operation(operation_id, lambda op, reporter: run_attach(op, reporter, guest_id=guest_id,
                                                                profile_id=profile_id, allocation_id=allocation_id),
                  resume_token=resume_token)


def gpu_detach_task(operation_id: str, allocation_id: int, resume_token: str | None = None) -> None:
    run_operation(operation_id, lambda op, reporter: run_detach(op, reporter, allocation_id=allocation_id),
                  resume_token=resume_token)


# -- settling -------------------------------------------------------------------------------------

def allocations_settle(operation: Operation) -> None:
    """An operation that held allocations ended: success makes them active (detach: gone),
    anything else gives the card back (detach: the guest keeps it)."""
    held = GpuAllocation.objects.filter(operation_id=operation.pk)
    ok = operation.status == "succeeded"
    # What the config holds decides, not how the operation ended: past step `config` the change is made.
    written = "config" in (operation.steps_done or []) and operation.kind in KINDS
    if operation.kind == "gpu.detach":
        if ok or written:
            held.delete()
        else:
            held.update(state=AllocationState.ACTIVE)
    elif ok or written:
        held.update(state=AllocationState.ACTIVE)
        if operation.kind == "guest.create":
            for allocation in held.select_related("profile"):
                if not allocation.slots:
                    slots = ["hostpci0"] if allocation.profile.kind != ProfileKind.LXC else \
                        [f"dev{i}" for i in range(len(allocation.profile.device_nodes))]
                    GpuAllocation.objects.filter(pk=allocation.pk).update(slots=",".join(slots))
    else:
        held.delete()
    push_for(operation.cluster_id)


def push_for(cluster_id: int | None) -> None:
    if cluster_id is None:
        return
    from apps.nodes import presence
    from apps.nodes.models import Cluster

    from .services import live_group, push_gpu_map

    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is not None and presence.watcher_count(live_group(cluster.pk)):
        push_gpu_map(cluster)


@receiver(operation_finished, dispatch_uid="gpus.allocations.settle")
def _on_finished(sender, operation: Operation, **kwargs) -> None:
    if operation.kind in (*KINDS, "guest.create") and GpuAllocation.objects.filter(operation_id=operation.pk).exists():
        allocations_settle(operation)


def allocations_release_gone(cluster) -> int:
    """Sync: allocations of guests that are no longer in the inventory are freed (the guest was
    deleted). Reserved ones wait for their operation (the guest may not be synced yet)."""
    gone = GpuAllocation.objects.filter(cluster=cluster, state=AllocationState.ACTIVE).exclude(
        vmid__in=Guest.objects.filter(cluster=cluster).values("vmid"))
    count = gone.count()
    if count:
        gone.delete()
    # Operations that ended without the finish hook (worker lost): settle them too.
    stuck = GpuAllocation.objects.filter(cluster=cluster, state=AllocationState.RESERVED).exclude(
        Q(operation_id__isnull=True) | Q(operation_id__in=Operation.objects.filter(
            status__in=("pending", "running")).values("pk")))
    for operation in Operation.objects.filter(pk__in=stuck.values("operation_id")):
        allocations_settle(operation)
    return count + allocations_follow_moves(cluster)


def allocations_follow_moves(cluster) -> int:
    """A guest that moved (migration, HA recovery) holds a card of its profile on its new node, as
    Proxmox resolved its mapping there: its allocation moves to a free one (card rows locked), so
    the old card is free again. None free there (Proxmox let it start with a card we think taken):
    the allocation stays and a warning says so. Returns how many moved."""
    from .placement import card_rooms

    moved = 0
    active = GpuAllocation.objects.filter(cluster=cluster, state=AllocationState.ACTIVE).select_related("device")
    nodes = dict(Guest.objects.filter(cluster=cluster, vmid__in=active.values("vmid")).exclude(node=None)
                 .values_list("vmid", "node_id"))
    for allocation in active:
        node_id = nodes.get(allocation.vmid)
        if node_id is None or node_id == allocation.device.node_id:
            continue
        with transaction.atomic():
            rooms = [r for r in card_rooms(allocation.profile, node_id=node_id, lock=True) if r.free]
            if not rooms:
                logger.warning("guest %s moved, but no card of %s is free on its new node", allocation.vmid,
                               allocation.profile)
                continue
            GpuAllocation.objects.filter(pk=allocation.pk).update(device=max(rooms, key=lambda r: r.used).device)
        moved += 1
    return moved


CONFIG_READS_PER_REFRESH = 50


def configs_unknown(cluster) -> list[Guest]:
    """Guests on nodes with cards of a profile whose config was never read (at most
    CONFIG_READS_PER_REFRESH per refresh, so the cost stays bounded; the rest at the next)."""
    nodes = GpuProfile.devices.through.objects.filter(gpuprofile__cluster=cluster).values("gpudevice__node_id")
    return list(Guest.objects.select_related("node", "cluster").filter(
        cluster=cluster, node_id__in=nodes, config={}, template=False, details_synced_at=None
    ).order_by("vmid")[:CONFIG_READS_PER_REFRESH])


def allocations_adopt(cluster) -> int:
    """Guests whose known config (read when someone opened them) already holds a profile's mapping
    or device nodes, given outside the portal or before the profile existed, get their allocation,
    so placement never hands out what they hold. Database only."""
    from .placement import card_rooms

    profiles = list(GpuProfile.objects.filter(cluster=cluster))
    if not profiles:
        return 0
    held = set(GpuAllocation.objects.filter(cluster=cluster).values_list("vmid", "profile_id"))
    made = 0
    for guest in Guest.objects.filter(cluster=cluster).exclude(config={}).exclude(node=None).only(
            "pk", "vmid", "name", "type", "node_id", "tenant_id", "config"):
        for profile in profiles:
            if (guest.vmid, profile.pk) in held or profile.guest_type != guest.type:
                continue
            slots = _slots_holding(profile, guest.config, guest.type)
            if not slots:
                continue
            with transaction.atomic():
                rooms = [r for r in card_rooms(profile, node_id=guest.node_id, lock=True) if r.free]
                if not rooms:
                    logger.warning("guest %s holds %s but no card of it is free on its node", guest.vmid, profile)
                    continue
                GpuAllocation.objects.create(
                    profile=profile, device=max(rooms, key=lambda r: r.used).device, cluster=cluster,
                    vmid=guest.vmid, guest_name=guest.name, tenant_id=guest.tenant_id, slots=",".join(slots),
                    exclusive=profile.kind == ProfileKind.PASSTHROUGH, state=AllocationState.ACTIVE)
            held.add((guest.vmid, profile.pk))
            made += 1
    return made
