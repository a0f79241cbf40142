import pytest

from tests.fixtures import pve, sim_cluster, sync  # noqa: F401

PASSWORD = "tenant-pass-1234"


@pytest.fixture
def pool_tenants(sim_cluster, django_user_model):  # noqa: F811
    """Tenants acme and globex on pvesim's demo pools (their guests tenant-tagged by a real sync),
    an admin and a member each (`acme-admin`, `acme-member`, ..., password PASSWORD)."""
    from apps.permissions.models import Membership, Tenant, TenantPool

    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    TenantPool.objects.create(tenant=acme, cluster=sim_cluster, pool="acme")
    TenantPool.objects.create(tenant=globex, cluster=sim_cluster, pool="globex")
    sync(sim_cluster)
    users = {}
    for tenant in (acme, globex):
        for role in ("admin", "member"):
            users[f"{tenant.slug}-{role}"] = user = django_user_model.objects.create_user(
                username=f"{tenant.slug}-{role}", password=PASSWORD)
            Membership.objects.create(user=user, tenant=tenant, role=role)
    return {"acme": acme, "globex": globex, "users": users}
