"""What higher apps add to a migration's targets without the guests app importing them (the GPU
app: a node must have a free card of the guest's profile; a passthrough GPU cannot move live).

An app registers one object in its AppConfig.ready with one method:

    targets(*, guest, running, nodes) -> Refusals | None   # reads only, no Proxmox call
"""

from __future__ import annotations

from dataclasses import dataclass, field

_extensions: list = []


@dataclass
class Refusals:
    nodes: dict[str, list[str]] = field(default_factory=dict)  # node name -> why it cannot take the guest
    blockers: list[str] = field(default_factory=list)  # why no node can take it now (refuses every node)


def register(extension) -> None:
    if extension not in _extensions:
        _extensions.append(extension)


def refusals(*, guest, running: bool, nodes: list[str]) -> Refusals:
    """Every registered extension's refusals for moving `guest` to each of `nodes`, joined."""
    out = Refusals()
    for extension in _extensions:
        found = extension.targets(guest=guest, running=running, nodes=nodes)
        if found is None:
            continue
        for node, reasons in found.nodes.items():
            out.nodes.setdefault(node, []).extend(reasons)
        out.blockers.extend(found.blockers)
    return out
