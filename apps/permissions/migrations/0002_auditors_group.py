from django.db import migrations


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="Auditors")


class Migration(migrations.Migration):
    """Auditors read everything and change nothing: membership of this group makes one."""

    dependencies = [("permissions", "0001_tenants"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_group, migrations.RunPython.noop)]
