import pytest

from apps.proxmox import connect


@pytest.mark.django_db
def test_metrics_page_exposes_proxmox_call_counters(pvesim, anon_client, settings):
    settings.METRICS_PUBLIC = True
    connect(url=pvesim.url, token_id=pvesim.token_id, token_secret=pvesim.token_secret,
            fingerprint=pvesim.fingerprint).cluster_status()
    body = anon_client.get("/metrics").content.decode()
    assert 'proxmox_api_calls_total{method="GET",path="/cluster/status"}' in body
