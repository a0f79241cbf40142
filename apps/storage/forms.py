from django import forms

from .choices import UPLOAD_CONTENT, ChecksumAlgorithm, ContentType


def _content_choices(storage):
    return [(c.value, c.label) for c in ContentType if c in UPLOAD_CONTENT and storage.holds(c)]


class _TransferForm(forms.Form):
    content = forms.ChoiceField(choices=[])
    checksum_algorithm = forms.ChoiceField(choices=[("", "— none —"), *ChecksumAlgorithm.choices],
                                           required=False, label="Checksum algorithm")
    checksum = forms.CharField(required=False, max_length=128)

    def __init__(self, *args, storage, **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = storage
        self.fields["content"].choices = _content_choices(storage)


class StorageUploadForm(_TransferForm):
    file = forms.FileField(label="File")
    field_order = ["file", "content", "checksum_algorithm", "checksum"]


class StorageDownloadUrlForm(_TransferForm):
    url = forms.URLField(label="URL", assume_scheme="https")
    filename = forms.CharField(max_length=200, label="File name",
                               help_text="Name on the storage, e.g. debian-13.1.0-amd64-netinst.iso")
    verify_certificates = forms.BooleanField(required=False, initial=True, label="Verify TLS certificates")
    field_order = ["url", "filename", "content", "checksum_algorithm", "checksum", "verify_certificates"]
