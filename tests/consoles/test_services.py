"""Console services without a cluster: the per-tenant switch and the open-session limits."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from apps.consoles import services
from apps.consoles.models import ConsoleSession, TenantConsoleSetting
from apps.core.models import AuditEntry
from apps.permissions import policy
from apps.permissions.models import Membership, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(django_user_model):
    tenant = Tenant.objects.create(name="Acme", slug="acme")
    member = django_user_model.objects.create_user(username="acme-member", password="x")
    Membership.objects.create(user=member, tenant=tenant, role="member")
    return SimpleNamespace(tenant=tenant, member=member)


def test_operators_withhold_and_allow_a_tenants_consoles_audited(operator, acme):
    guest = SimpleNamespace(tenant_id=acme.tenant.pk)
    assert services.console_gate(policy.actor_for_user(acme.member), guest) is None
    services.tenant_console_set(tenant=acme.tenant, enabled=False, user=operator)
    assert TenantConsoleSetting.objects.get(tenant=acme.tenant).enabled is False
    assert services.console_gate(policy.actor_for_user(acme.member), guest) == "consoles are withheld from this tenant"
    assert services.console_gate(policy.actor_for_user(operator), guest) is None  # operators keep theirs
    services.tenant_console_set(tenant=acme.tenant, enabled=True, user=operator)
    assert services.console_gate(policy.actor_for_user(acme.member), guest) is None
    assert list(AuditEntry.objects.filter(action__startswith="console.").values_list("action", flat=True)
                .order_by("pk")) == ["console.withhold", "console.allow"]


def test_a_tenant_member_may_not_withhold_consoles(acme):
    with pytest.raises(policy.Denied):
        services.tenant_console_set(tenant=acme.tenant, enabled=False, user=acme.member)
    assert not TenantConsoleSetting.objects.exists()


def test_session_limits_count_live_rows_only(operator, settings):
    settings.CONSOLE_SESSIONS_PER_USER = 2
    target = services.Target(kind="node", cluster=None, node="pve1", vmid=None, label="node pve1")
    first = services.session_open(user=operator, target=target, remote_addr="192.0.2.7")
    services.session_open(user=operator, target=target, remote_addr=None)
    with pytest.raises(services.ConsoleRefused) as refused:
        services.session_open(user=operator, target=target, remote_addr=None)
    assert refused.value.code == services.TOO_MANY
    # A relay that died leaves its row open; once unseen for STALE_AFTER it no longer counts.
    ConsoleSession.objects.filter(pk=first.pk).update(seen_at=timezone.now() - services.STALE_AFTER - timedelta(1))
    services.session_open(user=operator, target=target, remote_addr=None)
    services.session_close(session_id=first.pk, bytes_in=10, bytes_out=20, reason="closed by the browser")
    services.session_close(session_id=first.pk, bytes_in=99, bytes_out=99, reason="again")  # ends once
    first.refresh_from_db()
    assert (first.bytes_in, first.bytes_out, first.end_reason) == (10, 20, "closed by the browser")
    assert AuditEntry.objects.filter(action="console.close").count() == 1


def test_operators_find_the_node_shell_on_the_node_page(client, user_client):
    from apps.nodes.models import Node
    from tests.nodes.test_api import make_clusters

    make_clusters(1)
    node = Node.objects.first()
    assert f'href="/nodes/{node.pk}/console/"' in client.get(f"/nodes/{node.pk}/").content.decode()
    assert "/console/" not in user_client.get(f"/nodes/{node.pk}/").content.decode()
