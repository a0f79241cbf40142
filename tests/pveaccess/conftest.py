"""A Cluster row on a freshly reset pvesim (no sync needed: these pages read Proxmox live), and the
people who must not change it: a tenant member whose tenant has a pool there, an auditor."""

import pytest

from tests.fixtures import pve  # noqa: F401  (a fresh demo scenario)


@pytest.fixture
def access_cluster(pve, pvesim):  # noqa: F811
    from apps.nodes.models import Cluster

    return Cluster.objects.create(name="sim", api_url=pvesim.url, token_id=pvesim.token_id,
                                  token_secret=pvesim.token_secret, tls_mode="pin", fingerprint=pvesim.fingerprint)


@pytest.fixture
def tenant_member(access_cluster, django_user_model):
    from apps.permissions.models import Membership, Tenant, TenantPool

    tenant = Tenant.objects.create(name="ACME", slug="acme")
    TenantPool.objects.create(tenant=tenant, cluster=access_cluster, pool="acme")  # the cluster is theirs to see
    user = django_user_model.objects.create_user(username="acme-member", password="tenant-pass-1234")
    Membership.objects.create(user=user, tenant=tenant, role="admin")
    return user


@pytest.fixture
def auditor(django_user_model):
    from django.contrib.auth.models import Group

    from apps.permissions.models import AUDITORS_GROUP

    user = django_user_model.objects.create_user(username="auditor", password="auditor-pass-1234")
    user.groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    return user
