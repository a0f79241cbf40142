"""Forms of the GPU pages: a profile (operators) and the guest's "add a GPU" choice."""

from __future__ import annotations

from django import forms

from apps.nodes.selectors import cluster_list
from apps.permissions.models import Tenant

from .choices import ProfileKind
from .models import MdevType
from .selectors import gpu_device_list


class GpuProfileForm(forms.Form):
    """Types only: the service (profiles.clean) checks against the inventory."""

    cluster = forms.ChoiceField()
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "L40S full card"}))
    kind = forms.ChoiceField(choices=ProfileKind.choices, widget=forms.RadioSelect)
    description = forms.CharField(max_length=300, required=False)
    devices = forms.MultipleChoiceField(label="Cards", widget=forms.CheckboxSelectMultiple)
    mapping_id = forms.CharField(label="PCI mapping id", required=False, max_length=100,
                                 help_text="passthrough and vGPU: the cluster mapping the portal keeps on Proxmox")
    mdev_type = forms.ChoiceField(label="mdev type", required=False)
    device_nodes = forms.CharField(label="Device nodes", required=False,
                                   widget=forms.TextInput(attrs={"placeholder": "/dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm"}),
                                   help_text="containers: the nodes passed into each container, space-separated")
    gid = forms.IntegerField(label="Group id", required=False, min_value=0, help_text="containers, e.g. 44 (video)")
    mode = forms.CharField(required=False, max_length=4, help_text="containers: octal, e.g. 0666")
    shares = forms.IntegerField(required=False, min_value=1, max_value=64,
                                help_text="guests per card: containers (required); vGPU (default: the type's maximum)")
    q35 = forms.BooleanField(label="q35 machine, PCIe (pcie=1)", required=False, initial=True)
    ovmf = forms.BooleanField(label="OVMF (UEFI) firmware", required=False)
    tenants = forms.MultipleChoiceField(label="Offered to", required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cluster"].choices = [(str(c.pk), c.name) for c in cluster_list(user=user)]
        devices = gpu_device_list(user=user).order_by("cluster__name", "node__name", "pci_id")
        self.fields["devices"].choices = [(str(d.pk), f"{d.node.name} {d.pci_id} — {d.name}") for d in devices]
        types = MdevType.objects.filter(device__in=devices).values_list("type", "name").distinct().order_by("type")
        self.fields["mdev_type"].choices = [("", "—")] + [(t, f"{n or t} ({t})") for t, n in types]
        self.fields["tenants"].choices = [(str(t.pk), t.name) for t in Tenant.objects.order_by("name")]

    def data_for_service(self) -> dict:
        data = dict(self.cleaned_data)
        data["devices"] = [int(i) for i in data.get("devices") or []]
        data["tenants"] = [int(i) for i in data.get("tenants") or []]
        return data


def profile_initial(profile) -> dict:
    return {"cluster": str(profile.cluster_id), "name": profile.name, "kind": profile.kind,
            "description": profile.description, "devices": [str(d.pk) for d in profile.devices.all()],
            "mapping_id": profile.mapping_id, "mdev_type": profile.mdev_type,
            "device_nodes": " ".join(profile.device_nodes), "gid": profile.gid, "mode": profile.mode,
            "shares": profile.shares, "q35": profile.q35, "ovmf": profile.ovmf,
            "tenants": [str(t.pk) for t in profile.tenants.all()]}


class GpuAttachForm(forms.Form):
    gpu_profile = forms.ChoiceField(label="GPU profile")

    def __init__(self, *args, user, guest, **kwargs):
        from .attach import offered_profiles
        from .placement import free_by_node

        super().__init__(*args, **kwargs)
        from .attach import blocker

        node = guest.node.name if guest.node_id else ""
        choices, notes = [], []
        for p in offered_profiles(user=user, cluster_id=guest.cluster_id, kind=guest.type).select_related("cluster"):
            if why := blocker(p):
                choices.append((str(p.pk), f"{p.name} — not available yet"))
                notes.append(why)
            else:
                choices.append((str(p.pk), f"{p.name} — {free_by_node(p).get(node, 0)} free on {node}"))
        self.fields["gpu_profile"].choices = choices
        self.fields["gpu_profile"].help_text = " ".join(notes)


