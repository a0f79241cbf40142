"""PCI devices, mediated device types and cluster-wide PCI mappings."""

from __future__ import annotations

from typing import Required, TypedDict


class PciDevice(TypedDict, total=False):
    """One item of GET /nodes/{node}/hardware/pci: id, class, vendor, device, iommugroup promised."""

    id: Required[str]
    class_: str  # Proxmox's key is `class` (read with item.get("class"))
    vendor: Required[str]
    device: Required[str]
    iommugroup: Required[int]
    mdev: int
    vendor_name: str
    device_name: str
    subsystem_vendor: str
    subsystem_device: str
    subsystem_vendor_name: str
    subsystem_device_name: str


class MdevType(TypedDict, total=False):
    """One item of GET .../mdev: type, available, description promised; `name` optional."""

    type: Required[str]
    available: Required[int]
    description: Required[str]
    name: str


class PciMapping(TypedDict, total=False):
    """One item of GET /cluster/mapping/pci: id, description, map promised."""

    id: Required[str]
    description: Required[str]
    map: Required[list[str]]
    mdev: int
    checks: list


def mdev_capable(device: PciDevice) -> bool:
    """Whether the device offers mediated devices: Proxmox sets the optional `mdev` only on devices
    that do, so a missing flag means no (and costs no mdev call per passthrough GPU)."""
    return bool(int(device.get("mdev") or 0))


def pci_devices(client, node: str) -> list[PciDevice]:
    return [i for i in client.get(f"nodes/{node}/hardware/pci") or [] if isinstance(i, dict) and i.get("id")]


def mdev_types(client, node: str, pci_id: str) -> list[MdevType]:
    return [i for i in client.get(f"nodes/{node}/hardware/pci/{pci_id}/mdev") or [] if isinstance(i, dict)]


def pci_mappings(client) -> list[PciMapping]:
    return [i for i in client.get("cluster/mapping/pci") or [] if isinstance(i, dict)]
