"""The create wizard (UI): forms, steps, review, with `urlpatterns`."""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.urls import path
from django.views import View

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.nodes.choices import NodeStatus
from apps.nodes.selectors import cluster_list, node_list
from apps.operations.live import progress_context
from apps.operations.models import Operation
from apps.permissions.policy import check
from apps.storage.selectors import storage_content_list, storage_list

from ...choices import GuestType
from ...quota_views import wizard_tenant
from ...selectors import guest_list
from ..common import partial
from . import extensions
from .plans import plan_ct, plan_vm
from .services import guest_create_ct, guest_create_vm
from .validation import CT_DEFAULTS, DEFAULTS, PASSWORD_MIN, VM_OSTYPES, free_bytes, size_label


# One <form> holds every step (inactive steps are hidden, their inputs still post), so "Back" loses
# nothing. Each "Next" re-plans on the server and shows the earliest step that has an error.

VM_STEPS = [
    ("source", "Source", ["cluster", "source", "iso", "template", "clone"]),
    ("hardware", "Hardware", ["name", "cores", "memory", "storage", "disk_size", "bridge", "vlan", "firewall",
                              "ostype"]),
    ("cloudinit", "Cloud-init", ["cloudinit", "ci_user", "ssh_keys", "ip_mode", "ip", "gateway", "nameservers",
                                 "searchdomain"]),
    ("placement", "Placement", ["node", "gpu_profile"]),
    ("review", "Review", ["tags", "pool", "start"]),
]
CT_STEPS = [
    ("source", "Template", ["cluster", "ostemplate"]),
    ("hardware", "Resources", ["hostname", "cores", "memory", "swap", "storage", "disk_size", "unprivileged",
                               "nesting"]),
    ("access", "Network & access", ["bridge", "vlan", "firewall", "ip_mode", "ip", "gateway", "nameservers",
                                    "searchdomain", "password", "ssh_keys"]),
    ("placement", "Placement", ["node", "gpu_profile"]),
    ("review", "Review", ["tags", "pool", "start"]),
]
_IP_MODES = [("dhcp", "DHCP"), ("static", "Static")]


def _storage_choices(user, content: str) -> list[tuple[str, str]]:
    """One choice per storage id holding `content`: shared (with free space) or local (its nodes)."""
    by_name: dict[str, list] = {}
    for row in storage_list(user=user).filter(content__contains=[content]).order_by("storage", "node__name"):
        by_name.setdefault(row.storage, []).append(row)
    out = [("", "— choose —")]
    for name, rows in by_name.items():
        if rows[0].shared:
            label = f"{name} — shared, {size_label(free_bytes(rows[0]) or 0)} free"
        else:
            label = f"{name} — local on {', '.join(r.node.name for r in rows if r.node_id)}"
        out.append((name, label))
    return out


def _volume_choices(user, content: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for item in storage_content_list(user=user).filter(content=content).order_by("volid"):
        seen.setdefault(item.volid, f"{item.filename} ({item.storage.storage}, {size_label(item.size)})")
    return [("", "— choose —")] + list(seen.items())


def _node_choices(user) -> list[tuple[str, str]]:
    out = [("", "Automatic — the online node with the most free memory")]
    for node in node_list(user=user).order_by("name"):
        state = "" if node.status == NodeStatus.ONLINE else f" — {node.get_status_display().lower()}"
        out.append((node.name, f"{node.name}: {size_label(max(0, node.maxmem - node.mem))} memory free, "
                               f"{node.maxcpu} CPUs{state}"))
    return out


def known_bridges(user, limit: int = 500) -> list[str]:
    """Bridges the nodes report (GET /nodes/{node}/network, recorded by apps.nodes.versions) and those
    seen in the cached guest configs, vmbr0 first."""
    from apps.nodes.models import Node

    found = {"vmbr0"} | {b for bridges in Node.objects.values_list("bridges", flat=True) for b in bridges or []}
    for config in guest_list(user=user).exclude(config={}).values_list("config", flat=True)[:limit]:
        for key, value in (config or {}).items():
            if re.fullmatch(r"net\d+", key):
                match = re.search(r"bridge=([^,]+)", str(value))
                if match:
                    found.add(match.group(1))
    return sorted(found, key=lambda b: (b != "vmbr0", b))


class _WizardForm(forms.Form):
    """Types only: every range and inventory check is the service's (plan_vm / plan_ct)."""

    cluster = forms.ChoiceField(required=False)
    cores = forms.IntegerField(required=False, label="CPU cores")
    memory = forms.IntegerField(required=False, label="Memory (MiB)")
    storage = forms.ChoiceField(required=False)
    disk_size = forms.IntegerField(required=False, label="Disk size (GiB)")
    bridge = forms.CharField(required=False, label="Bridge")
    vlan = forms.IntegerField(required=False, label="VLAN tag", help_text="empty = untagged")
    firewall = forms.BooleanField(required=False, label="Proxmox firewall on this interface")
    ip_mode = forms.ChoiceField(choices=_IP_MODES, required=False, widget=forms.RadioSelect, label="IPv4")
    ip = forms.CharField(required=False, label="Address / prefix", widget=forms.TextInput(attrs={"placeholder": "192.168.10.20/24"}))
    gateway = forms.CharField(required=False, label="Gateway", widget=forms.TextInput(attrs={"placeholder": "192.168.10.1"}))
    nameservers = forms.CharField(required=False, label="DNS servers", help_text="space-separated; empty = the host's")
    searchdomain = forms.CharField(required=False, label="Search domain")
    ssh_keys = forms.CharField(required=False, label="SSH public keys", widget=forms.Textarea(attrs={
        "rows": 3, "placeholder": "ssh-ed25519 AAAA... you@laptop"}), help_text="one OpenSSH public key per line")
    node = forms.ChoiceField(required=False, label="Node")
    tags = forms.CharField(required=False, label="Tags", help_text="separated by ; or spaces")
    pool = forms.CharField(required=False, label="Pool")
    start = forms.BooleanField(required=False, label="Start after creation")
    content = "images"

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        clusters = list(cluster_list(user=user))
        self.fields["cluster"].choices = [(str(c.pk), c.name) for c in clusters]
        self.single_cluster = len(clusters) <= 1
        self.fields["storage"].choices = _storage_choices(user, self.content)
        self.fields["node"].choices = _node_choices(user)
        self.bridges = known_bridges(user)
        self.fields["bridge"].widget.attrs["list"] = "bridge-list"
        self.fields["pool"].widget.attrs["list"] = "pool-list"
        self.pools = sorted(set(guest_list(user=user).exclude(pool="").values_list("pool", flat=True)))
        for name, label, choices, help_text in extensions.form_fields(  # e.g. the GPU profile
                user=user, kind="qemu" if self.content == "images" else "lxc"):
            self.fields[name] = forms.ChoiceField(required=False, label=label, choices=choices, help_text=help_text)

    def data_for_service(self) -> dict:
        self.is_valid()
        data = {k: v for k, v in self.cleaned_data.items() if k in self.fields}
        if not data.get("cluster") and self.single_cluster:
            data["cluster"] = None
        return data


class VmWizardForm(_WizardForm):
    source = forms.ChoiceField(choices=[("iso", "Install from an ISO image"), ("template", "Clone a template")],
                               widget=forms.RadioSelect, required=False)
    iso = forms.ChoiceField(required=False, label="ISO image")
    template = forms.ChoiceField(required=False, label="VM template")
    clone = forms.ChoiceField(choices=[("linked", "Linked clone — instant, shares the template's disk"),
                                       ("full", "Full clone — an independent copy")],
                              widget=forms.RadioSelect, required=False, label="Clone mode")
    name = forms.CharField(required=False, label="Name", widget=forms.TextInput(attrs={"placeholder": "web-01"}))
    ostype = forms.ChoiceField(choices=VM_OSTYPES, required=False, label="Guest OS")
    cloudinit = forms.BooleanField(required=False, label="Configure the guest with cloud-init")
    ci_user = forms.CharField(required=False, label="User", widget=forms.TextInput(attrs={"placeholder": "debian"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["iso"].choices = _volume_choices(user, "iso")
        templates = guest_list(user=user).filter(template=True, type=GuestType.QEMU).order_by("vmid")
        self.fields["template"].choices = [("", "— choose —")] + [
            (str(t.vmid), f"{t.vmid} {t.name} (on {t.node.name if t.node_id else '?'}, {size_label(t.maxdisk)} disk)")
            for t in templates]

    def data_for_service(self) -> dict:
        data = super().data_for_service()
        data["template"] = int(data["template"]) if str(data.get("template") or "").isdigit() else None
        return data


class CtWizardForm(_WizardForm):
    content = "rootdir"
    ostemplate = forms.ChoiceField(required=False, label="CT template")
    hostname = forms.CharField(required=False, label="Hostname", widget=forms.TextInput(attrs={"placeholder": "dns-02"}))
    swap = forms.IntegerField(required=False, label="Swap (MiB)")
    unprivileged = forms.BooleanField(required=False, label="Unprivileged container (recommended)")
    nesting = forms.BooleanField(required=False, label="Nesting (run containers or systemd services inside)")
    password = forms.CharField(required=False, label="Root password",
                               widget=forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"}),
                               help_text=f"at least {PASSWORD_MIN} characters; or give SSH keys")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["ostemplate"].choices = _volume_choices(user, "vztmpl")


def _review(plan: dict) -> list[tuple[str, str]]:
    """What the review step shows, from the plan (what will be sent to Proxmox)."""
    kind = "VM" if plan["type"] == "qemu" else "Container"
    spec = plan.get("create") or plan.get("config") or {}
    rows = [("Type", kind), ("Name", plan["name"])]
    if plan["source"] == "iso":
        rows.append(("Source", f"ISO {plan['iso']}"))
    elif plan["source"] == "template":
        rows.append(("Source", f"{plan['clone_mode']} clone of template {plan['template_vmid']} "
                               f"({plan['template_name']}) on {plan['template_node']}"))
    else:
        rows.append(("Source", f"CT template {spec['ostemplate']}"))
    rows.append(("CPU / memory", f"{spec.get('cores')} cores, {spec.get('memory')} MiB"
                 + (f", swap {spec['swap']} MiB" if "swap" in spec else "")))
    rows.append(("Disk", f"{plan['disk_size']} GiB on {plan['storage'] or 'the template storage'}"))
    rows.append(("Network", spec.get("net0", "")))
    if plan["type"] == "qemu" and plan.get("cloudinit"):
        ci = [f"user {spec['ciuser']}" if spec.get("ciuser") else "", spec.get("ipconfig0", ""),
              "SSH keys" if spec.get("sshkeys") else "", f"DNS {spec['nameserver']}" if spec.get("nameserver") else ""]
        rows.append(("Cloud-init", ", ".join(c for c in ci if c)))
    if plan["type"] == "lxc":
        rows.append(("Options", ", ".join(["unprivileged" if spec.get("unprivileged") else "privileged"]
                                          + (["nesting"] if spec.get("features") else []))))
    rows.extend(tuple(row) for row in plan.get("review_extra") or [])
    rows.append(("Node", f"{plan['node']} ({plan['placement']})"))
    return rows


class GuestCreateWizardView(LoginRequiredMixin, View):
    """GET: the wizard at its first step. POST `_nav` = next | back | goto:<step> | refresh | create:
    re-plan on the server (refresh: the same step again, e.g. the placement table after a new GPU
    choice); create queues the operation and answers its live progress panel."""

    kind = "vm"

    @property
    def spec(self):
        if self.kind == "vm":
            return VmWizardForm, VM_STEPS, plan_vm, guest_create_vm, DEFAULTS
        return CtWizardForm, CT_STEPS, plan_ct, guest_create_ct, CT_DEFAULTS

    def _render(self, request, form, steps, step, errors=None, plan=None, placement=None):
        names = [s[0] for s in steps]
        index = names.index(step)
        shown = {f for _, _, fields in steps[:index + 1] for f in fields}
        for field, messages in (errors or {}).items():
            target = field if field in form.fields and field in shown else None
            if field in form.fields and field not in shown:
                continue
            for message in messages:
                form.add_error(target, message if target else f"{field}: {message}")
        context = {"form": form, "steps": steps, "step": step, "step_index": index, "kind": self.kind,
                   "quota_tenant": wizard_tenant(request),
                   "review": _review(plan) if plan and step == "review" else None,
                   # Every node's verdict (can take it, or why not: no free GPU, memory, storage...).
                   "placement_nodes": placement if step == "placement" else None,
                   "title": "Create a VM" if self.kind == "vm" else "Create a container"}
        is_htmx = request.headers.get("HX-Request") == "true"
        return partial(request, "guests/create/partials/wizard.html" if is_htmx else "guests/create/wizard.html",
                        context)

    def get(self, request):
        check(request.user, "guest.create", request=request)  # 403 (audited) for who may not
        form_class, steps, _, _, defaults = self.spec
        initial = {**defaults, "cloudinit": False}
        form = form_class(user=request.user, initial=initial)
        return self._render(request, form, steps, "source")

    def post(self, request):
        check(request.user, "guest.create", request=request)
        form_class, steps, plan_fn, create_fn, _ = self.spec
        names = [s[0] for s in steps]
        step = request.POST.get("_step") if request.POST.get("_step") in names else names[0]
        nav = request.POST.get("_nav", "next")
        form = form_class(request.POST, user=request.user)
        data = form.data_for_service()
        type_errors = {f: list(m) for f, m in form.errors.items()}
        form = form_class(request.POST, user=request.user)  # fresh: errors are added per step below
        plan, errors = plan_fn(user=request.user, data=data)
        for field, messages in type_errors.items():
            errors.setdefault(field, []).extend(messages)
        index = names.index(step)
        placement = getattr(errors, "placement", None)
        if nav == "refresh":
            return self._render(request, form, steps, step, None, plan, placement)
        if nav == "back":
            return self._render(request, form, steps, names[max(0, index - 1)], None, plan, placement)
        if nav.startswith("goto:") and nav[5:] in names[:index]:
            return self._render(request, form, steps, nav[5:], None, plan, placement)
        upto = len(names) if nav == "create" else index + 1
        bad = [i for i, (_, _, fields) in enumerate(steps[:upto]) if any(f in errors for f in fields)]
        if bad or (nav == "create" and errors):
            return self._render(request, form, steps, names[bad[0]] if bad else step, errors, None, placement)
        if not errors and (tenant := wizard_tenant(request)) is not None:  # over quota: said on its field now
            from ...quotas import CREATE_FIELDS, create_amounts, preview_errors

            spec = plan.get("create") or plan.get("config") or {}
            over = preview_errors(tenant, create_amounts(cores=spec.get("cores"), memory_mib=spec.get("memory"),
                                                         disk_gib=plan.get("disk_size")), CREATE_FIELDS)
            bad = [i for i, (_, _, fields) in enumerate(steps[:upto]) if any(f in over for f in fields)]
            if bad:
                return self._render(request, form, steps, names[bad[0]], over)
        if nav != "create":
            # The next step starts clean: its errors show once the user has had a go at it.
            return self._render(request, form, steps, names[min(index + 1, len(names) - 1)], None, plan, placement)
        try:
            operation = create_fn(user=request.user, data=data)
        except ValidationError as exc:  # e.g. no free vmid, over quota: shown at the step of its field
            at = [name for name, _, fields in steps if any(f in exc.message_dict for f in fields)]
            return self._render(request, form, steps, at[0] if at else step, exc.message_dict, plan)
        audit_log(user=request.user, action="guests.guest_create", target=operation.target_repr,
                  result=AuditResult.ACCEPTED, request=request, detail={"operation": str(operation.pk)})
        if not isinstance(operation, Operation):  # an ApprovalRequest: waits for an operator
            return partial(request, "approvals/partials/submitted.html", {"approval": operation, "plan": plan})
        return partial(request, "guests/create/partials/submitted.html",
                        {**progress_context(operation), "plan": plan, "kind": self.kind})


urlpatterns = [
    path("guests/create/vm/", GuestCreateWizardView.as_view(kind="vm"), name="guest_create_vm"),
    path("guests/create/ct/", GuestCreateWizardView.as_view(kind="ct"), name="guest_create_ct"),
]
