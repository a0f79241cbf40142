"""Two tenants on pvesim's demo pools (acme: guests 100, 101, 102, 200; globex: 103, 104, 201) after
the first sync, with a member each, an auditor, and API helpers for each of them."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from tests.fixtures import pve, sim_cluster  # noqa: F401


@pytest.fixture
def tenants(sim_cluster, django_user_model):  # noqa: F811 - the fixture imported above
    from django.contrib.auth.models import Group

    from apps.guests.models import Guest
    from apps.permissions.models import AUDITORS_GROUP, Membership, Tenant, TenantPool

    acme = Tenant.objects.create(name="ACME", slug="acme")
    globex = Tenant.objects.create(name="Globex", slug="globex")
    for tenant in (acme, globex):
        TenantPool.objects.create(tenant=tenant, cluster=sim_cluster, pool=tenant.slug)
        # what the next sync would do, without its time: the pool's guests are the tenant's
        Guest.objects.filter(cluster=sim_cluster, pool=tenant.slug).update(tenant=tenant)
    users = {}
    for tenant in (acme, globex):
        users[tenant.slug] = user = django_user_model.objects.create_user(username=f"{tenant.slug}-member",
                                                                          password="pass-1234-member")
        Membership.objects.create(user=user, tenant=tenant, role="member")
    users["auditor"] = django_user_model.objects.create_user(username="fw-auditor", password="pass-1234-auditor")
    users["auditor"].groups.add(Group.objects.get_or_create(name=AUDITORS_GROUP)[0])
    guests = {g.vmid: g for g in Guest.objects.filter(cluster=sim_cluster).select_related("node", "cluster")}
    assert guests[100].tenant == acme and guests[103].tenant == globex
    return {"acme": acme, "globex": globex, "users": users, "guests": guests, "cluster": sim_cluster}


@pytest.fixture
def acme_api(tenants):
    return Api(tenants["users"]["acme"])


@pytest.fixture
def globex_api(tenants):
    return Api(tenants["users"]["globex"])
