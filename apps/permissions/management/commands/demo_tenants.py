"""`manage.py demo_tenants --cluster demo`: tenants acme and globex on the demo cluster's pools.

Each gets its TenantPool, quotas and two accounts (`<slug>-admin`, `<slug>-member`). Idempotent:
re-running keeps existing accounts and their passwords (kept in var/demo_credentials.json).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.nodes.models import Cluster
from apps.permissions.choices import QuotaResource, TenantRole
from apps.permissions.models import Membership, Quota, Tenant, TenantPool

GIB = 1024**3

# slug -> (name, pool on the demo cluster, quotas): room above what the demo pools already hold
# (acme: 25 vCPUs, 80.5 GiB memory, 4 guests; globex: 14 vCPUs, 49 GiB, 3 guests); globex smaller.
TENANTS = {
    "acme": ("Acme", "acme", {QuotaResource.VCPUS: 48, QuotaResource.MEMORY: 160 * GIB, QuotaResource.DISK: 1000 * GIB,
                              QuotaResource.GUESTS: 10, QuotaResource.SNAPSHOTS_PER_GUEST: 5,
                              QuotaResource.BACKUPS: 10}),
    "globex": ("Globex", "globex", {QuotaResource.VCPUS: 32, QuotaResource.MEMORY: 96 * GIB,
                                    QuotaResource.DISK: 500 * GIB, QuotaResource.GUESTS: 8,
                                    QuotaResource.SNAPSHOTS_PER_GUEST: 3, QuotaResource.BACKUPS: 6}),
}
ROLES = [("admin", TenantRole.ADMIN), ("member", TenantRole.MEMBER)]
# Set when a tenant is created (an operator may change them since): globex is run like a student lab,
# its new guests expire after 90 days (extended by up to 30 at a time, deleted 7 days after expiry) and
# requests above 8 vCPUs or 16 GiB of memory wait for an operator's approval.
POLICIES = {
    "globex": {"lease_days": 90, "lease_max_extension_days": 30, "lease_grace_days": 7,
               "approval_above_vcpus": 8, "approval_above_memory": 16 * GIB},
}


def credentials_store() -> Path:
    return Path(settings.VAR_DIR) / "demo_credentials.json"


def ensure_accounts(accounts: list[tuple[str, bool]], say=lambda text: None) -> dict[str, str]:
    """Create missing accounts ((username, is_staff)); their passwords are kept in the credentials
    store (0600) so re-runs agree. Returns {username: password} for `accounts`."""
    store = credentials_store()
    saved = json.loads(store.read_text()) if store.exists() else {}
    User = get_user_model()
    out = {}
    for username, staff in accounts:
        if not User.objects.filter(username=username).exists():
            password = saved.get(username) or secrets.token_urlsafe(12)
            User.objects.create_user(username=username, password=password, is_staff=staff,
                                     email=f"{username}@example.com")
            saved[username] = password
            say(f"created account '{username}'")
        elif username not in saved:
            saved[username] = "(existing account: password unchanged)"
        out[username] = saved[username]
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(saved, indent=2))
    store.chmod(0o600)
    return out


class Command(BaseCommand):
    help = "Create the demo tenants acme and globex (pools, quotas, an admin and a member each)."

    def add_arguments(self, parser):
        parser.add_argument("--cluster", default="demo", help="name of the demo cluster in the control plane")

    def handle(self, *args, **options):
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"cluster: no cluster named '{options['cluster']}' (run demo_setup first)")
        accounts = [(f"{slug}-{suffix}", False) for slug in TENANTS for suffix, _ in ROLES]
        credentials = ensure_accounts(accounts, say=self.stdout.write)
        User = get_user_model()
        with transaction.atomic():
            for slug, (name, pool, quotas) in TENANTS.items():
                tenant, created = Tenant.objects.get_or_create(slug=slug, defaults={"name": name,
                                                                                   **POLICIES.get(slug, {})})
                TenantPool.objects.get_or_create(cluster=cluster, pool=pool, defaults={"tenant": tenant})
                for resource, limit in quotas.items():
                    # Existing limits stay: an operator may have changed them since.
                    Quota.objects.get_or_create(tenant=tenant, resource=resource, defaults={"limit": limit})
                for suffix, role in ROLES:
                    user = User.objects.get(username=f"{slug}-{suffix}")
                    Membership.objects.get_or_create(user=user, tenant=tenant, defaults={"role": role})
                if created:
                    self.stdout.write(f"created tenant '{slug}' on pool '{pool}' of cluster '{cluster.name}'")
        for username, password in credentials.items():
            self.stdout.write(f"login: {username} / {password}")
