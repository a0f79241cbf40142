"""What higher apps add to a guest's creation without the guests app importing them (the GPU
profile: nodes it may land on, config keys, a reservation in the create's transaction).

An app registers one object in its AppConfig.ready with two methods:

    plan(*, user, cluster, data, kind, errors) -> Extra | None   # reads only; errors by field
    reserve(*, operation, plan, vmid, node) -> None             # in the create's transaction
    form_field(*, user, kind) -> (name, label, choices, help) | None   # the wizard's field

and optionally steps the worker runs once the guest exists, before it is started (each one a
step marker, so a resumed run skips what is done; each must be idempotent):

    create_steps(plan) -> list[(step name, words)]
    run_create_step(step, *, operation, reporter, client, plan, vmid) -> None   # raises ProxmoxError
"""

from __future__ import annotations

from dataclasses import dataclass, field

_extensions: list = []


@dataclass
class Extra:
    allowed_nodes: set[str] | None = None  # None: any node
    reason: str = ""  # why the other nodes cannot take it (shown on `node`), unless `refusals` says
    refusals: dict[str, str] = field(default_factory=dict)  # node -> why that node cannot take it
    notes: dict[str, str] = field(default_factory=dict)  # node -> what it offers (the wizard's node table)
    # The extension already refused the request on its own field (e.g. no free GPU anywhere): its
    # per-node refusals are shown, not repeated as an error on `node`; nothing else is planned.
    reported: bool = False
    settings: dict = field(default_factory=dict)  # config keys the new guest gets
    plan: dict = field(default_factory=dict)  # what reserve() needs later, kept in the plan
    review: list[tuple[str, str]] = field(default_factory=list)  # rows of the wizard's review


def register(extension) -> None:
    if extension not in _extensions:
        _extensions.append(extension)


def form_fields(*, user, kind: str) -> list[tuple[str, str, list[tuple[str, str]], str]]:
    """The wizard's extra choice fields for a `kind` (qemu | lxc) guest: (name, label, choices, help)."""
    out = []
    for extension in _extensions:
        spec = extension.form_field(user=user, kind=kind)
        if spec is not None:
            out.append(spec)
    return out


def plan_extras(*, user, cluster, data: dict, kind: str, errors) -> list[Extra]:
    extras = []
    for extension in _extensions:
        extra = extension.plan(user=user, cluster=cluster, data=data, kind=kind, errors=errors)
        if extra is not None:
            extras.append(extra)
    return extras


def apply(plan: dict, extras: list[Extra]) -> None:
    """Put the extras' config keys where the worker sends them and keep their data in the plan."""
    target = plan.get("create") if plan.get("create") is not None else plan.setdefault("config", {})
    for extra in extras:
        target.update(extra.settings)
        plan.setdefault("extensions", {}).update(extra.plan)
        plan.setdefault("review_extra", []).extend([list(row) for row in extra.review])


def reserve(*, operation, plan: dict, vmid: int, node: str) -> None:
    for extension in _extensions:
        extension.reserve(operation=operation, plan=plan, vmid=vmid, node=node)


def create_steps(plan: dict) -> list[tuple[str, str]]:
    """(step, words) the extensions add to this creation, in order (after create/clone/config)."""
    out = []
    for extension in _extensions:
        hook = getattr(extension, "create_steps", None)
        if hook is not None:
            out.extend(hook(plan))
    return out


def run_create_step(step: str, **kwargs) -> None:
    for extension in _extensions:
        hook = getattr(extension, "create_steps", None)
        if hook is not None and step in [name for name, _ in hook(kwargs["plan"])]:
            extension.run_create_step(step, **kwargs)
            return
    raise RuntimeError(f"no extension runs create step '{step}'")
