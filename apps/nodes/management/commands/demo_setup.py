"""`manage.py demo_setup --pvesim var/pvesim.json`: the demo cluster (with the simulator's root@pam
credential, for containers sharing a GPU), an operator, the demo tenants, the demo GPU profiles, the
SSH channel for intrusion prevention (firewall's demo_ips).

Idempotent: re-running updates the cluster's URL, token and pinned fingerprint (pvesim makes new
ones at each start), keeps existing accounts and their passwords (kept in var/demo_credentials.json).
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.nodes import sync
from apps.nodes.models import Cluster
from apps.nodes.services import cluster_create, cluster_update

ACCOUNTS = [("operator", True)]  # (username, is_staff); tenant accounts: permissions' demo_tenants


class Command(BaseCommand):
    help = "Register the pvesim cluster from its ready-file, create demo accounts, run a first sync."

    def add_arguments(self, parser):
        parser.add_argument("--pvesim", default=str(Path(settings.VAR_DIR) / "pvesim.json"),
                            help="pvesim's --ready-file (JSON with url, token_id, token_secret, fingerprint)")
        parser.add_argument("--name", default="demo", help="cluster name in the control plane")
        parser.add_argument("--wait", type=float, default=120.0,
                            help="seconds to wait for a sync a worker is running before giving up")

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
        # Before the first sync, so the guests found in the tenants' pools are theirs from the start.
        call_command("demo_tenants", "--cluster", cluster.name, stdout=self.stdout)

        result = self._first_sync(cluster, options["wait"])
        call_command("demo_gpus", "--cluster", cluster.name, stdout=self.stdout)  # after the inventory exists
        try:  # the firewall app's part; the demo runs without IPS rather than not at all
            call_command("demo_ips", "--cluster", cluster.name, "--pvesim", str(path), stdout=self.stdout)
        except CommandError as exc:
            self.stdout.write(f"IPS not set up: {exc}")
        cluster.refresh_from_db()
        self.stdout.write(f"cluster '{cluster.name}' at {cluster.api_url}: {cluster.nodes.count()} nodes, "
                          f"quorate={cluster.quorate}, {sum(result.calls.values())} Proxmox calls, "
                          f"{result.duration:.2f}s")
        for username, password in credentials.items():
            self.stdout.write(f"login: {username} / {password}")

    def _first_sync(self, cluster: Cluster, wait: float) -> sync.CycleResult:
        """Our own sync cycle; while a worker's cycle holds the lock, wait for it and run after it."""
        deadline = time.monotonic() + wait
        said = False
        while True:
            result = sync.run_cycle(cluster.pk)
            if result is None:
                raise CommandError(f"cluster '{cluster.name}' was deleted while it was being set up")
            if not result.skipped:
                break
            if not said:
                self.stdout.write(f"a worker is syncing cluster '{cluster.name}': waiting for it to finish")
                said = True
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"a worker's sync of cluster '{cluster.name}' still holds the sync lock after {wait:.0f}s; "
                    "the cluster is registered and that worker will finish syncing it: see its page")
            time.sleep(0.5)
        if not result.ok:
            raise CommandError(f"first sync of cluster '{cluster.name}' failed: "
                               f"{result.error or 'Proxmox gave no reason'}")
        return result

    def _cluster(self, ready: dict, name: str, user) -> Cluster:
        values = dict(api_url=ready["url"], token_id=ready["token_id"], token_secret=ready["token_secret"],
                      tls_mode="pin", fingerprint=ready["fingerprint"])
        if ready.get("root_password"):  # the simulator's root@pam: containers may then share a GPU
            values["root_password"] = ready["root_password"]
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
