from django.db import migrations, models


class Migration(migrations.Migration):
    """The storage content API list's default order (volid, id) read from an index (issue 11)."""

    dependencies = [
        ("storage", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="storagecontent",
            index=models.Index(fields=["volid", "id"], name="storagecontent_volid_id_idx"),
        ),
    ]
