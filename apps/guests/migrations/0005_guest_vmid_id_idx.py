from django.db import migrations, models


class Migration(migrations.Migration):
    """The guest lists' default order (vmid; the API adds id) read from an index (issue 11)."""

    dependencies = [
        ("guests", "0004_guest_tenant"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="guest",
            index=models.Index(fields=["vmid", "id"], name="guest_vmid_id_idx"),
        ),
    ]
