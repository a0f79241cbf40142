"""EncryptedTextField stores a Fernet token and reads back plain text."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection, models
from django.test.utils import isolate_apps

from apps.core.fields import DecryptionError, EncryptedTextField

pytestmark = pytest.mark.django_db


@pytest.fixture
def vault():
    with isolate_apps("apps.core"):
        class Vault(models.Model):
            secret = EncryptedTextField(null=True, blank=True)

            class Meta:
                app_label = "core"
                db_table = "test_core_vault"

        with connection.schema_editor() as editor:
            editor.create_model(Vault)
        yield Vault
        with connection.schema_editor() as editor:
            editor.delete_model(Vault)


def raw(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM test_core_vault WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_stored_encrypted_read_back_plain(vault):
    obj = vault.objects.create(secret="PVEAPIToken=root@pam!dc=abc")
    stored = raw(obj.pk)
    assert "abc" not in stored and stored.startswith("gAAAA")
    assert vault.objects.get(pk=obj.pk).secret == "PVEAPIToken=root@pam!dc=abc"
    other = vault.objects.create(secret="PVEAPIToken=root@pam!dc=abc")
    assert raw(other.pk) != stored  # random per write: equal secrets do not show as equal


def test_null_stays_null(vault):
    obj = vault.objects.create(secret=None)
    assert raw(obj.pk) is None
    assert vault.objects.filter(secret__isnull=True).count() == 1


def test_equality_lookups_are_refused(vault):
    with pytest.raises(TypeError, match="does not support the 'exact' lookup"):
        vault.objects.filter(secret="x").count()


def test_wrong_key_is_a_clear_error_and_rotation_works(vault, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old
    obj = vault.objects.create(secret="hunter2")
    settings.FIELD_ENCRYPTION_KEY = new
    with pytest.raises(DecryptionError, match="FIELD_ENCRYPTION_KEY or SECRET_KEY changed"):
        vault.objects.get(pk=obj.pk)
    settings.FIELD_ENCRYPTION_KEY = f"{new},{old}"  # new encrypts, old still decrypts
    assert vault.objects.get(pk=obj.pk).secret == "hunter2"


def test_generic_detail_never_shows_encrypted_fields(vault):
    from apps.core.templatetags.core import model_fields

    obj = vault.objects.create(secret="hunter2")
    rows = model_fields(obj)
    assert ("Id", obj.pk) in rows
    assert all("hunter2" != value for _, value in rows) and all(label != "Secret" for label, _ in rows)
