from django import forms

from .choices import Affinity, ResourceState, RuleType


class HaResourceForm(forms.Form):
    """A guest's HA options (the guest page's HA panel, and the bulk form with `guests`)."""

    state = forms.ChoiceField(choices=ResourceState.choices, initial=ResourceState.STARTED,
                              help_text="what HA keeps it at: started restarts it anywhere allowed")
    max_restart = forms.IntegerField(min_value=0, max_value=10, initial=1, label="Max restarts",
                                     help_text="restarts on the same node before moving it")
    max_relocate = forms.IntegerField(min_value=0, max_value=10, initial=1, label="Max relocations",
                                      help_text="other nodes tried before giving up (error state)")
    failback = forms.BooleanField(required=False, initial=True,
                                  help_text="go back to the preferred node when it returns")
    comment = forms.CharField(required=False, max_length=4096)


class HaBulkForm(HaResourceForm):
    """Several guests at once: `guests` repeated (checkboxes) or comma separated."""

    guests = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_guests(self):
        raw = self.data.getlist("guests") if hasattr(self.data, "getlist") else [self.data.get("guests") or ""]
        try:
            ids = [int(x) for value in raw for x in str(value).split(",") if x.strip()]
        except ValueError:
            raise forms.ValidationError("guest ids are numbers") from None
        if not ids:
            raise forms.ValidationError("choose at least one guest")
        return ids


class HaMoveForm(forms.Form):
    node = forms.ChoiceField(label="To node")
    relocate = forms.BooleanField(required=False, help_text="stop, move, start (instead of a live migration)")

    def __init__(self, *args, nodes: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["node"].choices = [(n, n) for n in nodes]


class HaRuleForm(forms.Form):
    """The rule editor: one priority box per node (empty: not allowed), resources as checkboxes."""

    rule = forms.CharField(max_length=100, label="Name", help_text="lowercase letters, digits, - and _")
    type = forms.ChoiceField(choices=RuleType.choices, widget=forms.RadioSelect, initial=RuleType.NODE_AFFINITY)
    resources = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, label="HA guests")
    strict = forms.BooleanField(required=False, help_text="only the listed nodes, never any other")
    affinity = forms.ChoiceField(choices=[("", "—"), *Affinity.choices], required=False)
    disable = forms.BooleanField(required=False, label="Disabled")
    comment = forms.CharField(required=False, max_length=4096)

    def __init__(self, *args, cluster, resources, rule=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.cluster, self.instance = cluster, rule
        self.fields["resources"].choices = [(r.sid, f"{r.sid} {r.guest.name if r.guest else ''}".strip())
                                            for r in resources]
        self.node_names = list(cluster.nodes.order_by("name").values_list("name", flat=True))
        for name in self.node_names:
            self.fields[f"prio_{name}"] = forms.IntegerField(
                required=False, min_value=0, max_value=1000, label=name,
                initial=(rule.nodes.get(name) if rule is not None else None))
        if rule is not None:
            for key in ("rule", "type"):
                self.fields[key].disabled = True
            self.initial.update(rule=rule.rule, type=rule.type, resources=rule.resources, strict=rule.strict,
                                affinity=rule.affinity, disable=rule.disable, comment=rule.comment)

    @property
    def node_fields(self):
        return [self[f"prio_{name}"] for name in self.node_names]

    def rule_data(self) -> dict:
        data = dict(self.cleaned_data)
        data["nodes"] = {name: data.pop(f"prio_{name}") for name in self.node_names
                         if data.get(f"prio_{name}") is not None}
        for name in self.node_names:
            data.pop(f"prio_{name}", None)
        return data


class MaintenanceForm(forms.Form):
    enable = forms.TypedChoiceField(choices=[("1", "drain"), ("0", "bring back")], coerce=lambda v: v == "1")


# Where a replication form's operation panel goes: the HA page's slot (outside the pushed panel, so a
# push does not take the progress away) or the slot inside the replication card (storage page).
REPLICATION_SLOTS = [("ha-operation", "HA page"), ("replication-operation", "replication card")]


class ReplicationSlotMixin(forms.Form):
    slot = forms.ChoiceField(choices=REPLICATION_SLOTS, required=False, widget=forms.HiddenInput)

    def clean_slot(self):
        return self.cleaned_data.get("slot") or "replication-operation"


class ReplicationJobForm(ReplicationSlotMixin):
    """A new replication job (the replication card of the HA and ZFS storage pages). Shape only:
    what Proxmox would refuse is checked by apps.ha.replication and shown on these fields."""

    vmid = forms.IntegerField(label="Guest (VMID)", min_value=100, max_value=999_999_999,
                              widget=forms.NumberInput(attrs={"placeholder": "e.g. 201"}))
    target = forms.ChoiceField(label="To node")
    schedule = forms.CharField(max_length=128, required=False, initial="*/15",
                               help_text="PVE calendar event: */15, hourly, mon..fri 22:00")
    rate = forms.FloatField(required=False, label="Rate limit (megabytes per second)", widget=forms.NumberInput(
        attrs={"step": "any", "placeholder": "no limit"}))
    comment = forms.CharField(required=False, max_length=4096)
    disable = forms.BooleanField(required=False, label="Disabled")

    def __init__(self, *args, cluster, **kwargs):
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.auto_id = f"id_repl{cluster.pk}_%s"  # one add form per cluster on the HA page
        self.fields["vmid"].widget.attrs["list"] = f"replication-guests-{cluster.pk}"  # the card's suggestions
        self.fields["target"].choices = [("", "—"), *((n, n) for n in
                                                      cluster.nodes.order_by("name").values_list("name", flat=True))]


class ReplicationEditForm(ReplicationSlotMixin):
    schedule = forms.CharField(max_length=128, required=False)
    rate = forms.FloatField(required=False, label="Rate limit (megabytes per second)", widget=forms.NumberInput(
        attrs={"step": "any", "placeholder": "no limit"}))
    comment = forms.CharField(required=False, max_length=4096)
    disable = forms.BooleanField(required=False, label="Disabled")

    def __init__(self, *args, job, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"] = {"schedule": job.schedule, "rate": job.rate, "comment": job.comment,
                             "disable": job.disable, **kwargs["initial"]}
        super().__init__(*args, **kwargs)
        self.job = job
        self.auto_id = f"id_job{job.pk}_%s"  # one form per row: ids stay unique on the page


class ReplicationDeleteForm(ReplicationSlotMixin):
    keep = forms.BooleanField(required=False, label="Keep the copies on the target")
