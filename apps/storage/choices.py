from django.db import models


class ContentType(models.TextChoices):
    """What a Proxmox storage holds (pve-semantics §8)."""

    ISO = "iso", "ISO image"
    VZTMPL = "vztmpl", "CT template"
    BACKUP = "backup", "Backup"
    IMAGES = "images", "VM disk"
    ROOTDIR = "rootdir", "CT volume"
    SNIPPETS = "snippets", "Snippet"
    IMPORT = "import", "Import"


# Content kinds worth listing: disks (images/rootdir) show on their guests, read from the config.
LISTED_CONTENT = (ContentType.ISO, ContentType.VZTMPL, ContentType.BACKUP, ContentType.SNIPPETS,
                  ContentType.IMPORT)
# What upload and download-url accept (schema enum).
UPLOAD_CONTENT = (ContentType.ISO, ContentType.VZTMPL, ContentType.IMPORT)


class StorageStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    UNKNOWN = "unknown", "Unknown"


class ChecksumAlgorithm(models.TextChoices):
    MD5 = "md5", "MD5"
    SHA1 = "sha1", "SHA-1"
    SHA224 = "sha224", "SHA-224"
    SHA256 = "sha256", "SHA-256"
    SHA384 = "sha384", "SHA-384"
    SHA512 = "sha512", "SHA-512"
