"""EncryptedTextField: text stored as a Fernet token, read back as plain text.

Key: settings.FIELD_ENCRYPTION_KEY (one or more comma-separated Fernet keys, the first encrypts,
all decrypt, for rotation), else a key derived from SECRET_KEY with HKDF. Tokens are random per
write, so the column cannot be searched: only `isnull` lookups are allowed.
"""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(ValueError):
    """Stored token does not open with the configured keys (key changed or data tampered)."""


@lru_cache(maxsize=8)
def _fernet(field_keys: str, secret_key: str) -> MultiFernet:
    if field_keys:
        try:
            return MultiFernet([Fernet(key.strip()) for key in field_keys.split(",") if key.strip()])
        except ValueError as exc:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY must be Fernet keys (Fernet.generate_key())"
            ) from exc
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"datacenter.EncryptedTextField"
    ).derive(secret_key.encode())
    return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


def fernet() -> MultiFernet:
    return _fernet(settings.FIELD_ENCRYPTION_KEY, settings.SECRET_KEY)


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "cannot decrypt a stored secret: FIELD_ENCRYPTION_KEY or SECRET_KEY changed"
        ) from exc


class EncryptedTextField(models.TextField):
    """A TextField encrypted at rest. Python side always sees plain text (or None)."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return None
        return encrypt(str(value))

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return decrypt(value)

    def get_lookup(self, lookup_name):
        # Ciphertexts differ on every write: comparisons would silently never match.
        if lookup_name != "isnull":
            raise TypeError(f"EncryptedTextField does not support the '{lookup_name}' lookup")
        return super().get_lookup(lookup_name)
