"""Forms of the Proxmox access pages: formats are checked here, what Proxmox holds by the services."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator

from apps.proxmox import access as pve_access


def _check(error_fn):
    def clean(value):
        error = error_fn(value)
        if error:
            raise forms.ValidationError(error)
        return value
    return clean


class UserForm(forms.Form):
    userid = forms.CharField(label="User id", max_length=64, help_text="name@realm, e.g. dora@pve",
                             validators=[_check(pve_access.userid_error)])
    password = forms.CharField(required=False, max_length=64,
                               widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                               help_text="pve realm only, 8 to 64 characters")
    groups = forms.MultipleChoiceField(required=False, choices=())
    firstname = forms.CharField(label="First name", required=False, max_length=1024)
    lastname = forms.CharField(label="Last name", required=False, max_length=1024)
    email = forms.EmailField(required=False, max_length=254)
    comment = forms.CharField(required=False, max_length=2048)
    expire = forms.DateField(label="Expires", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                             help_text="empty: never")
    enable = forms.BooleanField(label="Enabled", required=False, initial=True)

    def __init__(self, *args, groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["groups"].choices = [(g, g) for g in groups]


class UserEditForm(forms.Form):
    userid = forms.ChoiceField(label="User", choices=())
    groups = forms.MultipleChoiceField(required=False, choices=(), help_text="replaces the user's groups")
    enable = forms.BooleanField(label="Enabled", required=False, initial=True)

    def __init__(self, *args, users=(), groups=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["userid"].choices = [(u, u) for u in users]
        self.fields["groups"].choices = [(g, g) for g in groups]


class GroupForm(forms.Form):
    groupid = forms.CharField(label="Group id", max_length=64, validators=[
        RegexValidator(pve_access.GROUPID_RE, "letters, digits, '.', '-' and '_' only")])
    comment = forms.CharField(required=False, max_length=2048)


class RoleForm(forms.Form):
    roleid = forms.CharField(label="Role id", max_length=64)
    privs = forms.MultipleChoiceField(label="Privileges", choices=(), widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, privileges=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["privs"].choices = [(p, p) for p in privileges]


class TokenForm(forms.Form):
    userid = forms.ChoiceField(label="User", choices=())
    name = forms.CharField(label="Token name", max_length=64, help_text="e.g. terraform")
    privsep = forms.BooleanField(label="Privilege separation", required=False, initial=True,
                                 help_text="on: the token gets only what its own ACL entries grant (and its user has)")
    expire = forms.DateField(label="Expires", required=False, widget=forms.DateInput(attrs={"type": "date"}),
                             help_text="empty: when its user expires")
    comment = forms.CharField(required=False, max_length=2048)

    def __init__(self, *args, users=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["userid"].choices = [(u, u) for u in users]


class AclForm(forms.Form):
    path = forms.CharField(max_length=256, help_text="e.g. / or /vms/100 or /pool/acme",
                           validators=[_check(pve_access.acl_path_error)])
    type = forms.ChoiceField(label="For", choices=[(t, t) for t in pve_access.SUBJECT_TYPES])
    ugid = forms.CharField(label="User, group or token", max_length=128,
                           help_text="dora@pve, a group id, or dora@pve!ci",
                           widget=forms.TextInput(attrs={"list": "pve-subjects", "autocomplete": "off"}))
    roleid = forms.ChoiceField(label="Role", choices=())
    propagate = forms.BooleanField(required=False, initial=True, help_text="also on the paths below")

    def __init__(self, *args, roles=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roleid"].choices = [(r, r) for r in roles]


class AclRemoveForm(forms.Form):
    path = forms.CharField(max_length=256)
    type = forms.ChoiceField(choices=[(t, t) for t in pve_access.SUBJECT_TYPES])
    ugid = forms.CharField(max_length=128)
    roleid = forms.CharField(max_length=64)


class EffectiveForm(forms.Form):
    authid = forms.CharField(label="User or token", max_length=128, help_text="dora@pve or dora@pve!ci",
                             widget=forms.TextInput(attrs={"list": "pve-subjects", "autocomplete": "off"}))
    path = forms.CharField(max_length=256, initial="/", help_text="e.g. /vms/100")
