"""Live side over a real ASGI server: an open socket counts as a watcher, and a sync pushes the
changed fragments to it."""

import pytest
from websockets.sync.client import connect

from apps.nodes import presence, sync

from .conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def cycle(cluster_id):
    """Run our own sync cycle, waiting out one the worker may be running (it holds the lock)."""
    def not_skipped():
        result = sync.run_cycle(cluster_id)
        return None if result.skipped else result

    return wait_for(not_skipped, timeout=30, message="a sync cycle that is not skipped")


def open_socket(asgi_server, client, groups):
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    return connect(f"{asgi_server.ws_url}/ws/live/?groups={groups}", additional_headers={"Cookie": cookie},
                   open_timeout=10)


def test_open_page_counts_as_watcher_and_receives_changes(asgi_server, client, cluster, sim):
    cycle(cluster.pk)
    assert presence.watcher_count(cluster.live_group) == 0
    with open_socket(asgi_server, client, cluster.live_group) as ws:
        wait_for(lambda: presence.watcher_count(cluster.live_group) == 1, timeout=10, message="watcher counted")
        sim.admin("POST", "/nodes/pve3/power", state="off")
        result = cycle(cluster.pk)
        assert result.watchers == 1
        html = ws.recv(timeout=10)
        while "cluster-card" not in html:
            html = ws.recv(timeout=10)
        assert f'id="cluster-card-{cluster.pk}"' in html and 'hx-swap-oob="true"' in html
        assert 'data-node="pve3" data-status="offline"' in html
        assert "node-row-" in html
        assert sim.token_secret not in html
        # A cycle where nothing changed pushes only the fresh "synced ... ago" stamps.
        sim.admin("POST", "/time-scale", scale=0.001)  # freeze usage so nothing moves
        try:
            cycle(cluster.pk)
            cycle(cluster.pk)
        finally:
            sim.admin("POST", "/time-scale", scale=20)
        messages = []
        try:
            while True:
                messages.append(ws.recv(timeout=2))
        except TimeoutError:
            pass
        assert f'id="cluster-synced-{cluster.pk}"' in messages[-1] and "cluster-card" not in messages[-1]
        cluster.refresh_from_db()
        # Watched: the next cycle comes after the active interval, not the idle one.
        assert (cluster.next_sync_at - cluster.last_sync_at).total_seconds() == pytest.approx(5, abs=1)
    wait_for(lambda: presence.watcher_count(cluster.live_group) == 0, timeout=10, message="watcher gone")


def test_plain_user_cannot_watch_a_cluster(asgi_server, user_client, cluster):
    with open_socket(asgi_server, user_client, cluster.live_group):
        pass
    assert presence.watcher_count(cluster.live_group) == 0
