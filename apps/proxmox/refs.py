"""References to Proxmox objects: what a gateway function needs to build a path, nothing more."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuestRef:
    """One guest where Proxmox keeps it: node, `qemu` or `lxc`, vmid."""

    node: str
    kind: str  # qemu | lxc
    vmid: int

    def __post_init__(self):
        if self.kind not in ("qemu", "lxc"):
            raise ValueError(f"kind must be 'qemu' or 'lxc', got '{self.kind}'")
        if not self.node:
            raise ValueError(f"the node of guest {self.vmid} is not known")

    @property
    def path(self) -> str:
        return f"nodes/{self.node}/{self.kind}/{self.vmid}"

    def on(self, node: str) -> "GuestRef":
        """The same guest on another node (after a migration)."""
        return GuestRef(node, self.kind, self.vmid)
