"""The edit form and its pages (UI), with `urlpatterns`."""

from __future__ import annotations

from urllib.parse import unquote

from django import forms
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views import View

from ... import config as guest_config
from ...choices import GuestType
from ...models import Guest
from ..base import GuestActionView
from ..common import guest_or_404, partial
from .services import CONFLICT_TEXT, ConfigConflict, guest_config_update
from .validation import current_ipconfig, resizable_disks, split_tags, storages_for


FRESH_SECONDS = 3  # a read this recent is good enough to edit from (no new read queued)
WAIT_SECONDS = 30  # how long the page waits for the read before saying Proxmox did not answer
ERROR_GRACE = 5


def _key(api_key: str) -> str:
    return api_key.replace(".", "_")


class GuestConfigForm(forms.Form):
    """Fields built from the guest's config; `changes()` gives the API-shaped dict for the service."""

    digest = forms.CharField(widget=forms.HiddenInput, required=False)
    cores = forms.IntegerField(label="CPU cores", min_value=1)
    memory = forms.IntegerField(label="Memory (MiB)", min_value=1)
    onboot = forms.BooleanField(label="Start on boot", required=False)
    protection = forms.BooleanField(label="Protection (no delete, no disk removal)", required=False)
    tags = forms.CharField(required=False, help_text="Separated by spaces, commas or semicolons.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, guest: Guest, storages: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.guest = guest
        config = guest.config or {}
        qemu = guest.type == GuestType.QEMU
        f = self.fields
        initial = {"digest": guest.config_digest, "cores": config.get("cores", 1),
                   "memory": str(config.get("memory", 512)).split("=")[-1],
                   "onboot": str(config.get("onboot", 0)) == "1", "protection": str(config.get("protection", 0)) == "1",
                   "tags": " ".join(split_tags(config.get("tags"))), "description": config.get("description", "")}
        if not qemu:
            f["swap"] = forms.IntegerField(label="Swap (MiB)", min_value=0)
            initial["swap"] = config.get("swap", 512)
        ip, gw = current_ipconfig(guest)
        if qemu:
            f["ciuser"] = forms.CharField(label="User", required=False)
            f["sshkeys"] = forms.CharField(label="SSH public keys", required=False, help_text="One per line.",
                                           widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}))
            initial.update(ciuser=config.get("ciuser", ""), sshkeys=unquote(config.get("sshkeys", "")).strip())
        f["ip"] = forms.CharField(label="IPv4 address", required=False, help_text="dhcp, or an address with prefix: 10.0.0.5/24")
        f["gateway"] = forms.CharField(label="Gateway", required=False)
        initial.update(ip=ip, gateway=gw)
        self.disk_rows = resizable_disks(guest)
        for disk in self.disk_rows:
            name = _key(f"resize.{disk['key']}")
            f[name] = forms.IntegerField(label=f"{disk['key']} size (GiB)", min_value=1)
            initial[name] = disk["gib"]
            disk["field"] = name
        choices = [("", "— no new disk —")] + [(s, s) for s in storages]
        f["add_disks_0_storage"] = forms.ChoiceField(label="Storage", choices=choices, required=False)
        f["add_disks_0_size"] = forms.IntegerField(label="Size (GiB)", min_value=1, required=False)
        if not qemu:
            f["add_disks_0_mountpoint"] = forms.CharField(label="Mount point", required=False)
        self.net_rows = guest_config.networks(config, guest.type)
        for nic in self.net_rows:
            base = _key(f"nets.{nic['key']}")
            f[f"{base}_bridge"] = forms.CharField(label="Bridge")
            f[f"{base}_vlan"] = forms.IntegerField(label="VLAN", required=False)
            f[f"{base}_firewall"] = forms.BooleanField(label="Firewall", required=False)
            f[f"{base}_remove"] = forms.BooleanField(label="Remove", required=False)
            initial.update({f"{base}_bridge": nic["bridge"], f"{base}_vlan": nic["vlan"] or None,
                            f"{base}_firewall": nic["firewall"]})
            nic["base"] = base
        f["add_nets_0_bridge"] = forms.CharField(label="Bridge", required=False, help_text="Empty: no new card.")
        f["add_nets_0_vlan"] = forms.IntegerField(label="VLAN", required=False)
        f["add_nets_0_firewall"] = forms.BooleanField(label="Firewall", required=False)
        if not self.is_bound:
            self.initial = initial

    def disk_fields(self) -> list[tuple[dict, forms.BoundField]]:
        return [(disk, self[disk["field"]]) for disk in self.disk_rows]

    def net_fields(self) -> list[tuple[dict, list[forms.BoundField]]]:
        return [(nic, [self[f"{nic['base']}_{s}"] for s in ("bridge", "vlan", "firewall", "remove")])
                for nic in self.net_rows]

    def changes(self) -> dict:
        d = self.cleaned_data
        out = {k: d.get(k) for k in ("digest", "cores", "memory", "swap", "description", "tags", "onboot",
                                      "protection", "ciuser", "sshkeys", "ip", "gateway") if k in self.fields}
        out["resize"] = {disk["key"]: d[disk["field"]] for disk in self.disk_rows if d.get(disk["field"])}
        if d.get("add_disks_0_storage") or d.get("add_disks_0_size"):
            out["add_disks"] = [{"storage": d.get("add_disks_0_storage"), "size": d.get("add_disks_0_size"),
                                 "mountpoint": d.get("add_disks_0_mountpoint", "")}]
        out["nets"], out["remove_nets"] = {}, []
        for nic in self.net_rows:
            base = nic["base"]
            if d.get(f"{base}_remove"):
                out["remove_nets"].append(nic["key"])
            else:
                out["nets"][nic["key"]] = {"bridge": d.get(f"{base}_bridge"), "vlan": d.get(f"{base}_vlan"),
                                           "firewall": d.get(f"{base}_firewall")}
        if d.get("add_nets_0_bridge"):
            out["add_nets"] = [{"bridge": d["add_nets_0_bridge"], "vlan": d.get("add_nets_0_vlan"),
                                "firewall": d.get("add_nets_0_firewall")}]
        return out

    def add_service_errors(self, exc: ValidationError) -> None:
        for key, messages in exc.message_dict.items():
            name = _key(key)
            if key == "remove_nets" or name not in self.fields:
                name = None
            for message in messages:
                self.add_error(name, message)


class GuestConfigPageView(LoginRequiredMixin, View):
    """GET: the edit page; queues a fresh read of the guest unless one just landed."""

    def get(self, request, pk):
        from ... import tasks

        guest = guest_or_404(request, pk)
        since = timezone.now()
        if guest.details_synced_at and (since - guest.details_synced_at).total_seconds() < FRESH_SECONDS:
            since = guest.details_synced_at
        elif guest.node_id is not None:
            transaction.on_commit(lambda: tasks.guest_refresh.delay(guest.pk))
        return render(request, "guests/config/config.html", {
            "guest": guest, "object": guest, "since": since.timestamp(), "live_groups": [f"guest-{guest.pk}"]})


class GuestConfigFormView(GuestActionView):
    """GET ?since=<ts>: the form once a read newer than `since` landed, else the waiting block
    (which asks again). POST: save; answers the progress panel, or the form with its errors."""

    form_class = GuestConfigForm
    template_name = "guests/config/form.html"
    error_context_name = "refused"
    success_template_name = "guests/config/saved.html"
    audit_action = "guests.guest_config"

    def get(self, request, pk):
        guest = self.object = self.get_object()
        try:
            since = float(request.GET.get("since", "0"))
        except ValueError:
            since = 0.0
        synced = guest.details_synced_at.timestamp() if guest.details_synced_at else 0.0
        waited = timezone.now().timestamp() - since
        if synced + 0.001 < since:
            # An error saved before this read was queued may be old news: give the new read a moment.
            if (guest.details_error and waited > ERROR_GRACE) or waited > WAIT_SECONDS:
                return partial(request, "guests/config/loading.html", {
                    "guest": guest, "since": since, "failed": guest.details_error or "Proxmox did not answer in time."})
            return partial(request, "guests/config/loading.html", {"guest": guest, "since": since})
        return self.render(self.template_name, self.get_context_data(form=self.get_form()))

    def get_form_kwargs(self):
        return {"guest": self.object, "storages": storages_for(self.object)}

    def perform(self, form):
        return guest_config_update(guest=self.object, user=self.request.user, changes=form.changes())

    def service_invalid(self, form, exc):
        form.add_service_errors(exc)
        return self.form_invalid(form)

    def refused(self, form, exc, message):
        if isinstance(exc, ConfigConflict):
            return self.form_invalid(form, conflict=exc.proxmox_message, conflict_text=CONFLICT_TEXT)
        return super().refused(form, exc, message)


urlpatterns = [
    path("guests/<int:pk>/config/", GuestConfigPageView.as_view(), name="guest_config"),
    path("guests/<int:pk>/config/form/", GuestConfigFormView.as_view(), name="guest_config_form"),
]
