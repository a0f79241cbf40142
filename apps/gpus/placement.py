"""Where a GPU can go and who holds what: capacity per card, free cards per node, and the
reservation of one card for one guest inside the caller's transaction.

A card is shared one way at a time: held whole (passthrough) it takes nothing else; sliced (mdev)
it takes only mdev holders (NVIDIA: of one type at a time); shared by containers it takes only
container holders up to the profile's share count. Every allocation counts, reserved or active."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from .choices import ProfileKind
from .models import GpuAllocation, GpuDevice, GpuProfile, MdevType

NVIDIA = "0x10de"
FIELD = "gpu_profile"


@dataclass
class CardRoom:
    device: GpuDevice
    capacity: int
    used: int
    why: str = ""  # why it takes nothing now, when it does not

    @property
    def free(self) -> int:
        return 0 if self.why else max(0, self.capacity - self.used)


def capacity(profile: GpuProfile, device: GpuDevice, mdev_types: dict[tuple[int, str], MdevType]) -> int:
    """How many guests of `profile` one card takes."""
    if profile.kind == ProfileKind.PASSTHROUGH:
        return 1
    if profile.shares:
        return int(profile.shares)
    if profile.kind == ProfileKind.MDEV:
        row = mdev_types.get((device.pk, profile.mdev_type))
        if row is None:
            return 0
        return row.max_instances if row.max_instances is not None else row.available
    return 1


def card_rooms(profile: GpuProfile, *, node_id: int | None = None, lock: bool = False) -> list[CardRoom]:
    """Each card of `profile` (on `node_id`) with its capacity and use. `lock`: the card rows are
    locked FOR UPDATE in pk order (inside the caller's transaction), so two reservations of one
    card take turns."""
    devices = profile.devices.select_related("node").order_by("pk")
    if node_id is not None:
        devices = devices.filter(node_id=node_id)
    if lock:
        devices = devices.select_for_update(of=("self",))
    devices = list(devices)
    holds: dict[int, list[tuple[str, str, bool]]] = defaultdict(list)
    for device_id, kind, mdev_type, exclusive in GpuAllocation.objects.filter(device__in=devices).values_list(
            "device_id", "profile__kind", "profile__mdev_type", "exclusive"):
        holds[device_id].append((kind, mdev_type, exclusive))
    mdev_types = {(m.device_id, m.type): m for m in MdevType.objects.filter(device__in=devices)}
    rooms = []
    for device in devices:
        held = holds.get(device.pk, [])
        room = CardRoom(device=device, capacity=capacity(profile, device, mdev_types), used=len(held))
        if device.stale:
            room.why = f"{device.node.name} {device.pci_id} was not seen at the last GPU refresh"
        elif any(exclusive for _, _, exclusive in held):
            room.why = "held whole by another guest"
        elif held and profile.kind == ProfileKind.PASSTHROUGH:
            room.why = "shared by other guests"
        elif any(kind != profile.kind for kind, _, _ in held):
            room.why = "shared another way by other guests"
        elif profile.kind == ProfileKind.MDEV and device.vendor_id == NVIDIA and \
                any(t != profile.mdev_type for _, t, _ in held):
            room.why = "NVIDIA cards run one vGPU type at a time; another type is in use"
        elif room.capacity == 0:
            room.why = f"offers no {profile.mdev_type} instances" if profile.kind == ProfileKind.MDEV else "no capacity"
        rooms.append(room)
    return rooms


def free_by_node(profile: GpuProfile) -> dict[str, int]:
    """Node name -> free places of `profile` there (nodes with cards of it only)."""
    out: dict[str, int] = {}
    for room in card_rooms(profile):
        out[room.device.node.name] = out.get(room.device.node.name, 0) + room.free
    return out


def full_phrase(profile: GpuProfile) -> str:
    """Why a card of `profile` that is at capacity takes no one more, in the profile's own terms."""
    if profile.kind == ProfileKind.PASSTHROUGH:
        return "no free card: each is passed through whole to one VM"
    if profile.kind == ProfileKind.MDEV:
        return f"no {profile.mdev_type} vGPU instance left"
    return f"no container share left ({profile.shares or 1} per card)"


def refusals_by_node(profile: GpuProfile, nodes=()) -> dict[str, str]:
    """Node name -> why that node cannot take a guest of `profile` now: its cards are full (no
    free card, no mdev instance, no share left) or cannot be used (stale, shared another way).
    Nodes named in `nodes` without a card of the profile are refused for that."""
    rooms: dict[str, list[CardRoom]] = defaultdict(list)
    for room in card_rooms(profile):
        rooms[room.device.node.name].append(room)
    out = {}
    for node, cards in rooms.items():
        if not any(c.free for c in cards):
            held = sum(c.used for c in cards)
            total = sum(c.capacity for c in cards if not c.why or c.used)
            reasons = sorted({c.why for c in cards if c.why})
            if any(not c.why for c in cards):
                reasons.append(full_phrase(profile))
            out[node] = f"no free {profile.name} on {node} ({held} of {total} held): {'; '.join(reasons)}"
    for node in nodes:
        if node not in rooms:
            out[node] = f"{node} has no card of {profile.name}"
    return out


def allocation_reserve(*, profile: GpuProfile, node, vmid: int, guest_name: str, tenant_id: int | None,
                       operation_id) -> GpuAllocation:
    """Take one place of `profile` on `node` for guest `vmid`, inside the caller's transaction (the
    one creating the operation). Card rows are locked in pk order; a whole card is also guarded by
    the database's unique constraint. Raises ValidationError {"gpu_profile": ...} when the node has
    no free place (nothing is held then)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("allocation_reserve must run inside the transaction that creates the operation")
    rooms = card_rooms(profile, node_id=node.pk, lock=True)
    if not rooms:
        raise ValidationError({FIELD: [f"{profile.name} has no card on node {node.name}"]})
    free = [r for r in rooms if r.free]
    if not free:
        reason = refusals_by_node(profile).get(node.name) or f"no free {profile.name} on {node.name}"
        raise ValidationError({FIELD: [reason]})
    # Fill the fullest card first: whole cards stay free for those who need them.
    room = max(free, key=lambda r: (r.used, -r.device.pk))
    try:
        with transaction.atomic():
            return GpuAllocation.objects.create(
                profile=profile, device=room.device, cluster_id=profile.cluster_id, vmid=vmid,
                guest_name=guest_name[:200], tenant_id=tenant_id, operation_id=operation_id,
                exclusive=profile.kind == ProfileKind.PASSTHROUGH)
    except IntegrityError as exc:
        if "once_per_guest" in str(exc):
            raise ValidationError({FIELD: [f"guest {vmid} already has a {profile.name}"]}) from exc
        raise ValidationError({FIELD: [f"{room.device.node.name} {room.device.pci_id} was just taken; try again"]}) \
            from exc
