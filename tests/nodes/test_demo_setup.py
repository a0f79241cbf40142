import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from apps.nodes.models import Cluster, Node

pytestmark = pytest.mark.django_db


def test_demo_setup_is_idempotent(sim, tmp_path, settings, capsys):
    settings.VAR_DIR = tmp_path
    ready = tmp_path / "pvesim.json"
    ready.write_text(json.dumps(sim.info))
    call_command("demo_setup", "--pvesim", str(ready))
    first = capsys.readouterr().out
    call_command("demo_setup", "--pvesim", str(ready))
    second = capsys.readouterr().out

    cluster = Cluster.objects.get()
    assert cluster.name == "demo" and cluster.tls_mode == "pin" and cluster.fingerprint == sim.fingerprint
    assert Node.objects.filter(cluster=cluster).count() == 3
    users = get_user_model().objects
    assert users.get(username="operator").is_staff and not users.get(username="tenant").is_staff
    assert users.count() == 2
    # Same credentials printed both times, and they work.
    creds = json.loads((tmp_path / "demo_credentials.json").read_text())
    assert f"login: operator / {creds['operator']}" in first and f"login: operator / {creds['operator']}" in second
    assert users.get(username="tenant").check_password(creds["tenant"])
    assert sim.token_secret not in first + second
