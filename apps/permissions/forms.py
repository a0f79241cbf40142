"""Forms of the API tokens page and the tenant page."""

from django import forms

from .auth import DEFAULT_EXPIRY_DAYS, MAX_EXPIRY_DAYS
from .choices import TenantRole
from .models import Tenant


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it: a script, a CI job…")
    expiry_days = forms.IntegerField(label="Expires after (days)", min_value=1, max_value=MAX_EXPIRY_DAYS,
                                     initial=DEFAULT_EXPIRY_DAYS)
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none(), required=False,
                                    help_text="The tenant the token acts in.")
    read_only = forms.BooleanField(label="Read-only (may not change anything)", required=False)

    def __init__(self, *args, actor, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["tenant"]
        field.queryset = Tenant.objects.filter(memberships__user_id=actor.user.pk).distinct()
        if actor.sees_everything:
            field.empty_label = "None (everything you may see)"
        else:
            field.required = True
            field.empty_label = None
            field.initial = actor.tenant_id


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="An existing user's username.")
    role = forms.ChoiceField(choices=TenantRole.choices, initial=TenantRole.MEMBER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=TenantRole.choices)


GIB = 1024**3


class QuotaRequestForm(forms.Form):
    """New limits a tenant admin asks for (blank: unchanged); memory and disk in GiB here."""

    vcpus = forms.IntegerField(label="vCPUs", min_value=0, max_value=100000, required=False)
    memory_gib = forms.IntegerField(label="Memory (GiB)", min_value=0, max_value=2**30, required=False)
    disk_gib = forms.IntegerField(label="Disk (GiB)", min_value=0, max_value=2**30, required=False)
    guests = forms.IntegerField(label="Guests", min_value=0, max_value=100000, required=False)
    snapshots_per_guest = forms.IntegerField(label="Snapshots per guest", min_value=0, max_value=10000,
                                             required=False)
    backups = forms.IntegerField(label="Backups", min_value=0, max_value=1000000, required=False)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000,
                             help_text="What the tenant needs it for: operators decide on it.")

    # form field -> (quota resource, factor to its unit)
    RESOURCES = {"vcpus": ("vcpus", 1), "memory_gib": ("memory", GIB), "disk_gib": ("disk", GIB),
                 "guests": ("guests", 1), "snapshots_per_guest": ("snapshots_per_guest", 1), "backups": ("backups", 1)}
    # quota resource -> form field (the service's errors go on the field the user typed in)
    FIELDS = {resource: name for name, (resource, _) in RESOURCES.items()}

    def limits(self) -> dict[str, int]:
        data = self.cleaned_data
        return {resource: data[name] * factor for name, (resource, factor) in self.RESOURCES.items()
                if data.get(name) is not None}


class QuotaDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("decline", "Decline")])
    reason = forms.CharField(max_length=2000, required=False)
