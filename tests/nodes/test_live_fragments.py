"""Pushed fragments are well-formed markup: attributes built in Python reach the browser unescaped,
every cluster push carries the dashboard trigger, and the dashboard answers htmx with its live part."""

from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from apps.nodes.models import Cluster
from apps.nodes.sync import render_cluster_fragments
from apps.operations.services import operation_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster():
    return Cluster.objects.create(name="demo", api_url="https://pve.example:8006", token_id="root@pam!t",
                                  token_secret="s", tls_mode="insecure", status="ok", quorate=True,
                                  last_sync_at=timezone.now() - timedelta(seconds=42))


def test_sync_stamps_carry_a_real_oob_attribute(cluster):
    html = render_to_string("nodes/partials/cluster_synced.html", {"cluster": cluster})
    assert html.count('hx-swap-oob="true"') == 2 and "&quot;" not in html
    assert f'id="cluster-synced-{cluster.pk}"' in html and f'id="cluster-status-synced-{cluster.pk}"' in html
    never = Cluster(pk=cluster.pk, name="new", last_sync_at=None)
    html = render_to_string("nodes/partials/cluster_synced.html", {"cluster": never})
    assert html.count('hx-swap-oob="true"') == 2 and "never" in html


def test_cluster_push_asks_open_dashboards_to_refresh(cluster):
    html = render_cluster_fragments(cluster)
    assert f'id="cluster-card-{cluster.pk}"' in html and 'id="dashboard-refresh"' in html


def test_dashboard_answers_htmx_with_figures_and_running_operations(client, operator, cluster):
    operation_create(kind="guest.migrate", user=operator, task_name="guests.guest_migrate", cluster_id=cluster.pk,
                     title="Migrate VM 101 (web-02) from pve2 to pve3")
    page = client.get("/").content.decode()
    assert 'id="dashboard-summary"' in page and 'id="dashboard-refresh"' in page and "at page load" not in page
    response = client.get("/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "<html" not in body and "HX-Request" in response["Vary"]
    assert body.lstrip().startswith('<section id="dashboard-summary"')
    assert 'data-stat="operations">1<' in body
    assert 'id="dashboard-operations" class="card" aria-label="Running operations" hx-swap-oob="true"' in body
    assert "Migrate VM 101 (web-02) from pve2 to pve3" in body and "guest.migrate" not in body
