from rest_framework import serializers

from ..choices import UPLOAD_CONTENT, ChecksumAlgorithm
from ..models import Storage, StorageContent


class StorageSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="storage-api:storage-detail")
    node = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True,
                                        help_text="Node of a local storage; null for shared storage (see `nodes`).")
    usage_percent = serializers.FloatField(read_only=True)

    class Meta:
        model = Storage
        fields = ["id", "url", "cluster", "storage", "node", "nodes", "type", "content", "shared", "status",
                  "disk", "maxdisk", "usage_percent", "content_synced_at", "content_error", "updated"]
        read_only_fields = fields


class StorageContentSerializer(serializers.ModelSerializer):
    storage_name = serializers.CharField(source="storage.storage", read_only=True)

    class Meta:
        model = StorageContent
        fields = ["id", "storage", "storage_name", "volid", "content", "size", "format", "vmid", "ctime",
                  "notes", "protected"]
        read_only_fields = fields


class _TransferSerializer(serializers.Serializer):
    content = serializers.ChoiceField(choices=UPLOAD_CONTENT)
    checksum = serializers.CharField(required=False, allow_blank=True, max_length=128, default="")
    checksum_algorithm = serializers.ChoiceField(choices=ChecksumAlgorithm.choices, required=False,
                                                 allow_blank=True, default="")


class StorageUploadSerializer(_TransferSerializer):
    file = serializers.FileField()
    filename = serializers.CharField(required=False, allow_blank=True, max_length=200, default="",
                                     help_text="Name on the storage; defaults to the uploaded file's name.")


class StorageDownloadUrlSerializer(_TransferSerializer):
    url = serializers.URLField(max_length=2048)
    filename = serializers.CharField(max_length=200)
    verify_certificates = serializers.BooleanField(required=False, default=True)
