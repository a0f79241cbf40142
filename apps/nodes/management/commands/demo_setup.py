"""`manage.py demo_setup --pvesim var/pvesim.json`: the demo cluster, an operator and a tenant user.

Idempotent: re-running updates the cluster's URL, token and pinned fingerprint (pvesim makes new
ones at each start), keeps existing accounts and their passwords (kept in var/demo_credentials.json).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.nodes import sync
from apps.nodes.models import Cluster
from apps.nodes.services import cluster_create, cluster_update

ACCOUNTS = [("operator", True), ("tenant", False)]  # (username, is_staff)


class Command(BaseCommand):
    help = "Register the pvesim cluster from its ready-file, create demo accounts, run a first sync."

    def add_arguments(self, parser):
        parser.add_argument("--pvesim", default=str(Path(settings.VAR_DIR) / "pvesim.json"),
                            help="pvesim's --ready-file (JSON with url, token_id, token_secret, fingerprint)")
        parser.add_argument("--name", default="demo", help="cluster name in the control plane")

    def handle(self, *args, **options):
        path = Path(options["pvesim"])
        try:
            ready = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read pvesim ready-file {path}: {exc}") from exc
        missing = [k for k in ("url", "token_id", "token_secret", "fingerprint") if not ready.get(k)]
        if missing:
            raise CommandError(f"{path} lacks {', '.join(missing)}")

        credentials = self._accounts()
        operator = get_user_model().objects.get(username="operator")
        cluster = self._cluster(ready, options["name"], operator)

        result = sync.run_cycle(cluster.pk)
        if result is None or not result.ok:
            raise CommandError(f"first sync failed: {getattr(result, 'error', 'cluster vanished')}")
        cluster.refresh_from_db()
        self.stdout.write(f"cluster '{cluster.name}' at {cluster.api_url}: {cluster.nodes.count()} nodes, "
                          f"quorate={cluster.quorate}, {sum(result.calls.values())} Proxmox calls, "
                          f"{result.duration:.2f}s")
        for username, password in credentials.items():
            self.stdout.write(f"login: {username} / {password}")

    def _cluster(self, ready: dict, name: str, user) -> Cluster:
        values = dict(api_url=ready["url"], token_id=ready["token_id"], token_secret=ready["token_secret"],
                      tls_mode="pin", fingerprint=ready["fingerprint"])
        existing = Cluster.objects.filter(name=name).first() or Cluster.objects.filter(api_url=ready["url"]).first()
        try:
            if existing is None:
                cluster = cluster_create(user=user, name=name, **values)
                self.stdout.write(f"registered cluster '{name}' (fingerprint {ready['fingerprint']} pinned)")
            else:
                cluster = cluster_update(cluster=existing, user=user, **values)
                self.stdout.write(f"cluster '{cluster.name}' already registered: connection refreshed")
        except ValidationError as exc:
            raise CommandError(f"pvesim connection test failed: {exc.message_dict}") from exc
        return cluster

    def _accounts(self) -> dict[str, str]:
        """Create missing accounts; passwords live in var/demo_credentials.json (0600) so re-runs agree."""
        store = Path(settings.VAR_DIR) / "demo_credentials.json"
        saved = json.loads(store.read_text()) if store.exists() else {}
        User = get_user_model()
        out = {}
        for username, staff in ACCOUNTS:
            user = User.objects.filter(username=username).first()
            if user is None:
                password = saved.get(username) or secrets.token_urlsafe(12)
                User.objects.create_user(username=username, password=password, is_staff=staff,
                                         email=f"{username}@example.com")
                saved[username] = password
                self.stdout.write(f"created {'operator' if staff else 'tenant'} account '{username}'")
            elif username not in saved:
                saved[username] = "(existing account: password unchanged)"
            out[username] = saved[username]
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(saved, indent=2))
        store.chmod(0o600)
        return out
