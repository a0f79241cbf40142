from django import forms

from .choices import TlsMode
from .models import Cluster


def normalize_api_url(value: str) -> str:
    """'pve1:8006' -> 'https://pve1:8006'; anything but https is refused."""
    url = (value or "").strip().rstrip("/")
    if url and "://" not in url:
        url = f"https://{url}"
    if not url.startswith("https://"):
        raise forms.ValidationError("Proxmox speaks HTTPS only: the URL must start with https://")
    return url


class ClusterForm(forms.ModelForm):
    """Registration and edit. The secret is write-only: never rendered back (empty = keep on edit)."""

    token_secret = forms.CharField(label="API token secret", widget=forms.PasswordInput(render_value=False),
                                   required=False, strip=True)
    confirm_fingerprint = forms.BooleanField(
        required=False, label="I compared this fingerprint with the one Proxmox shows and trust it")
    # Not a model field of the form: never bound to the instance, never rendered back.
    root_password = forms.CharField(
        label="root@pam password (optional)", required=False, strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Only for GPUs shared by containers: Proxmox lets root@pam alone, never an API token, pass device "
                  "nodes into a container (devN). Used for that write only, tested by logging in, stored encrypted, "
                  "never shown.")
    forget_root_password = forms.BooleanField(required=False, label="Forget the stored root@pam password")

    class Meta:
        model = Cluster
        fields = ["name", "api_url", "token_id", "token_secret", "tls_mode", "fingerprint", "ca_cert",
                  "sync_interval_active", "sync_interval_idle"]
        widgets = {
            "tls_mode": forms.RadioSelect,
            "ca_cert": forms.Textarea(attrs={"rows": 4, "placeholder": "-----BEGIN CERTIFICATE-----"}),
            "api_url": forms.TextInput(attrs={"placeholder": "https://pve1.example.com:8006"}),
            "token_id": forms.TextInput(attrs={"placeholder": "datacenter@pve!sync", "autocomplete": "off"}),
            "fingerprint": forms.TextInput(attrs={"placeholder": "AB:CD:…  (fetched from the server)", "class": "mono"}),
        }
        help_texts = {"name": "Leave empty to use the Proxmox cluster name."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        self.fields["tls_mode"].initial = TlsMode.PIN
        self.creating = self.instance.pk is None
        if self.creating:
            self.fields["token_secret"].required = True
        else:
            self.fields["token_secret"].help_text = "Leave empty to keep the stored secret."
            if self.instance.has_root_credential:
                self.fields["root_password"].help_text += " One is stored: leave empty to keep it."

    def clean_api_url(self):
        return normalize_api_url(self.cleaned_data["api_url"])

    def clean(self):
        data = super().clean()
        mode = data.get("tls_mode")
        if mode == TlsMode.PIN and data.get("fingerprint") and not data.get("confirm_fingerprint"):
            if self.creating or data.get("fingerprint") != self.instance.fingerprint:
                self.add_error("confirm_fingerprint", "Confirm that you compared the fingerprint before pinning it.")
        if mode == TlsMode.VERIFY and data.get("ca_cert") and "-----BEGIN CERTIFICATE-----" not in data["ca_cert"]:
            self.add_error("ca_cert", "Paste the CA certificate in PEM form (-----BEGIN CERTIFICATE-----…).")
        return data

    def service_values(self) -> dict:
        values = {f: self.cleaned_data.get(f) for f in self.Meta.fields}
        for f in ("name", "api_url", "token_id", "token_secret", "ca_cert", "fingerprint"):
            values[f] = (values.get(f) or "").strip()
        values["root_password"] = self.cleaned_data.get("root_password") or ""
        if not self.creating:
            values["forget_root_password"] = bool(self.cleaned_data.get("forget_root_password"))
        return values
