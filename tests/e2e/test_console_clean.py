"""Browser: every UI page stays quiet while the cluster changes under it. Each page of the URL conf
is opened (with real objects of the demo scenario) and watched for a while as a migration runs, a
guest is powered behind the portal's back and syncs push their fragments; the browser must log no
console error or warning, no uncaught exception, no htmx error event, and no request may fail
(including /favicon.ico). Real pvesim, Celery worker and ASGI server; a thread plays Celery beat.

Pages are watched in several tabs at once to keep the run short. ROLES is the list of users the
walk is done for; tenancy adds its tenant user there (see `role_context`)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver

from apps.core.models import AuditEntry
from apps.guests.actions.migrate import guest_migrate
from apps.guests.models import BackupJob, Guest
from apps.guests.services import guest_refresh
from apps.nodes.models import Node
from apps.operations.models import Operation
from apps.permissions.models import ApiToken, Membership, Tenant, TenantPool
from apps.storage.models import Storage, StorageContent
from apps.storage.services import storage_content_refresh
from tests.conftest import OPERATOR_PASSWORD, Api
from tests.e2e.test_dashboard import beat, demo_cluster  # noqa: F401  (fixtures)
from tests.fixtures import pve_client, wait_task
from tests.guests.test_backups import job_body
from tests.nodes.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WATCH_SECONDS = 8  # per page, while the cluster changes (more than one watched sync cycle, ~5 s)
TABS = 10  # pages watched at once

ROLES = ["operator", "tenant"]

# Routes that are not pages a person opens, each with the reason; every other route of the URL conf
# is visited (routes answering 405 to GET are actions), so a new page is covered from the day it
# exists, or has to be listed here.
NOT_PAGES = {
    "login": "the login form (the walk is logged in; it redirects)",
    "logout": "POST only",
    "favicon.ico": "checked on every page: each page asks for the icon",
    "core:dashboard": "the same URL as nodes:dashboard",
    "core:healthz": "JSON for probes",
    "core:metrics": "Prometheus text",
    "core:auditentry_export": "a CSV download (tests/core/test_audit_browser.py follows it)",
    "nodes:cluster_fingerprint": "POST only (htmx form helper)",
    "nodes:cluster_sync": "POST only",
    "storage:storage_content": "htmx fragment of the storage page",
    "storage:storage_refresh": "POST only",
    "storage:storage_upload": "POST only",
    "storage:storage_download_url": "POST only",
    "guests:guest_bulk_power": "POST only",
    "guests:guest_details": "htmx fragment of the guest page",
    "guests:guest_power": "action (POST)",
    "guests:guest_config_form": "htmx fragment of the settings page",
    "guests:guest_snapshot_tree": "htmx fragment of the snapshots page",
    "guests:backupjob_delete": "POST only",
    "gpus:gpu_refresh": "POST only",
    "pveaccess:index": "with one cluster it redirects to that cluster's access pages (walked)",
    "pveaccess:user_add": "POST only",
    "pveaccess:user_delete": "POST only",
    "pveaccess:token_add": "POST only",
    "pveaccess:token_delete": "POST only",
    "pveaccess:group_add": "POST only",
    "pveaccess:group_delete": "POST only",
    "pveaccess:role_add": "POST only",
    "pveaccess:role_delete": "POST only",
    "pveaccess:acl_add": "POST only",
    "pveaccess:acl_delete": "POST only",
    "operations:operation_cancel": "POST only",
    "leases:lease_extend": "POST only",
    "approvals:approval": "one request's page: the walk's demo has no approval request (the list page is walked)",
    "approvals:approval_approve": "POST only",
    "approvals:approval_decline": "POST only",
    "approvals:approval_withdraw": "POST only",
    "gpus:gpuprofile": "one GPU profile's page: the demo defines none (tests/gpus/test_profiles.py renders it)",
    "gpus:gpuprofile_delete": "one GPU profile's delete: the demo defines none",
    "gpus:gpu_detach": "one GPU allocation's detach: the demo gives no guest a GPU (tests/gpus/test_guest_panel.py)",
    "permissions:quotarequest_decide": "one quota request's decision: the demo has none (list page walked)",
    "ha:replication_add": "POST only (the replication card's form: tests/ha/test_replication_editor.py)",
    "ha:replication_edit": "POST only (the replication card's form: tests/ha/test_replication_editor.py)",
    "ha:replication_delete": "POST only (tests/ha/test_browser.py asks through the confirm dialog)",
}

# What a browser may print that is not a fault of the page.
IGNORED_CONSOLE = [
    re.compile(r"^\[DOM\] Input elements should have autocomplete attributes"),  # a Chromium hint
]


def ui_routes() -> list[tuple[str, str]]:
    """(name, route) of every route outside the API and Django admin, namespaced like reverse()."""
    found = []

    def walk(patterns, prefix="", namespace=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                ns = ":".join(filter(None, [namespace, p.namespace]))
                walk(p.url_patterns, prefix + str(p.pattern), ns)
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                name = ":".join(filter(None, [namespace, p.name])) if p.name else route
                found.append((name, route))

    walk(get_resolver().url_patterns)
    return [(n, r) for n, r in found if not r.startswith(("api/", "admin/"))]


@dataclass
class Objects:
    """One real object of each kind the pages show (from the demo scenario)."""

    cluster: object
    node: Node
    storage: Storage
    guest: Guest
    backup: StorageContent
    snapshot: str
    backupjob: BackupJob | None
    operation: Operation
    audit: AuditEntry
    tenant: Tenant
    member: object  # a user of `tenant`
    token: ApiToken
    ha_rule: object  # an HA rule of the demo (HaRule)

    def url(self, route: str) -> str:
        by_prefix = {"clusters/": self.cluster, "nodes/": self.node, "storage/": self.storage,
                     "guests/": self.guest, "backup-jobs/": self.backupjob, "operations/": self.operation,
                     "audit/": self.audit, "tenants/": self.tenant, "tokens/": self.token}
        owner = next((obj for prefix, obj in by_prefix.items() if route.startswith(prefix)), None)
        values = {"pk": getattr(owner, "pk", None), "backup_pk": self.backup.pk, "name": self.snapshot,
                  "user_id": self.member.pk, "key": self.token.token_key,
                  "cluster": self.cluster.pk, "ha_cluster": self.cluster.pk, "ha_node": self.node.pk,
                  "ha_guest": self.guest.pk, "guest_pk": self.guest.pk, "ha_rule": getattr(self.ha_rule, "pk", None),
                  "group": "webserver"}  # the demo's security group

        def fill(match):
            value = values[match.group(2)]
            assert value is not None, f"no object for <{match.group(0)}> in {route}"
            return str(value)

        return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


@dataclass
class Findings:
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    frames: int = 0
    closing: set = field(default_factory=set)  # pages being closed: their aborted requests are ours

    def watch(self, page, label: str) -> None:
        def watching() -> bool:
            return id(page) not in self.closing

        def on_console(msg):
            if watching() and msg.type in ("error", "warning") and \
                    not any(p.search(msg.text) for p in IGNORED_CONSOLE):
                self.console.append(f"{label}: console.{msg.type}: {msg.text}")

        def on_failed(request):
            if watching():
                self.failed.append(f"{label}: {request.failure} {request.method} {request.url}")

        def on_response(response):
            if response.status >= 400:
                self.failed.append(f"{label}: {response.status} {response.request.method} {response.url}")

        def on_frame(_):
            self.frames += 1

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.console.append(f"{label}: uncaught {exc}"))
        page.on("requestfailed", on_failed)
        page.on("response", on_response)
        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))

    def close(self, page) -> None:
        self.console += [f"{page.url}: htmx event {e}" for e in page.evaluate("window.__htmxErrors || []")]
        self.closing.add(id(page))
        page.close()


# htmx reports oob misses, swap and send errors as events (they also log); keep them for the report.
HTMX_ERRORS = """
window.__htmxErrors = [];
document.addEventListener("htmx:error", (e) => {
  const info = (e.detail && e.detail.errorInfo) || {};
  window.__htmxErrors.push(String(info.type || e.type) + " " + String((info.target && info.target.id) || ""));
}, true);
"""


@pytest.fixture
def role_context(request, browser, live_server, operator):
    """A logged-in browser context for the role under test (`operator`; tenancy adds `tenant`)."""
    users = {"operator": (operator.username, OPERATOR_PASSWORD), "tenant": TENANT_LOGIN}
    username, password = users[request.param]
    if request.param == "tenant":  # acme's member (demo_objects gives acme its pool and guests)
        tenant_member()
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.add_init_script(HTMX_ERRORS)
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.close()
    yield context
    context.close()


TENANT_LOGIN = ("acme-dev", "acme-dev-pass-1234")


def tenant_member():
    """acme's member (the walk's tenant role)."""
    tenant, _ = Tenant.objects.get_or_create(slug="acme", defaults={"name": "Acme"})
    member = get_user_model().objects.filter(username=TENANT_LOGIN[0]).first()
    if member is None:
        member = get_user_model().objects.create_user(username=TENANT_LOGIN[0], password=TENANT_LOGIN[1])
    Membership.objects.get_or_create(user=member, tenant=tenant)
    return member


def demo_objects(cluster, operator) -> Objects:
    """The demo's objects, with what pages show on demand read once: storage content (backups),
    a VM's snapshots (one taken here), a backup job, an audit entry (the registration's), a tenant
    with a member, and an API token."""
    for storage in Storage.objects.filter(cluster=cluster):
        storage_content_refresh(storage=storage)
    vm = Guest.objects.get(cluster=cluster, vmid=101)
    client = pve_client_for(cluster)
    try:
        wait_task(client, client.post(f"nodes/{vm.node.name}/qemu/{vm.vmid}/snapshot", snapname="before-walk"))
    finally:
        client.close()
    guest_refresh(guest=vm)
    Api(operator).post("/api/v1/backup-jobs/", job_body(cluster), expect=201)
    backup = StorageContent.objects.filter(content="backup", vmid=vm.vmid).first()
    assert backup is not None, "the demo scenario has a backup of VM 101"
    member = tenant_member()
    tenant = Tenant.objects.get(slug="acme")
    # acme owns the demo pool "acme" (as `make demo` sets it up): its guests are the tenant's.
    TenantPool.objects.get_or_create(tenant=tenant, cluster=cluster, pool="acme")
    Guest.objects.filter(cluster=cluster, pool="acme").update(tenant=tenant)
    token, _ = ApiToken.objects.create(user=operator, name="walk")
    from apps.ha.models import HaRule
    from apps.ha.services import ha_refresh

    ha_refresh(cluster=cluster)  # the HA rules (beat reads them; the walk does not wait for it)
    return Objects(
        cluster=cluster, node=Node.objects.get(cluster=cluster, name="pve1"),
        storage=Storage.objects.filter(cluster=cluster, storage="ceph-rbd").first(),
        guest=vm, backup=backup, snapshot="before-walk",
        backupjob=BackupJob.objects.filter(cluster=cluster).first(),
        operation=None, audit=AuditEntry.objects.order_by("pk").first(),
        tenant=tenant, member=member, token=token, ha_rule=HaRule.objects.filter(cluster=cluster).first(),
    )


def pve_client_for(cluster):
    from types import SimpleNamespace

    return pve_client(SimpleNamespace(url=cluster.api_url, token_id=cluster.token_id,
                                      token_secret=cluster.token_secret, fingerprint=cluster.fingerprint))


class Churn:
    """Changes the cluster between and during watch windows: a migration through the portal,
    guest power behind the portal's back (pvesim API), and syncs (the beat thread)."""

    def __init__(self, cluster, operator):
        self.cluster, self.operator, self.step = cluster, operator, 0
        self.migrations: list[Operation] = []

    def migrate(self) -> Operation:
        vm = Guest.objects.get(cluster=self.cluster, vmid=101)
        target = "pve3" if vm.node.name != "pve3" else "pve2"
        op = guest_migrate(guest=vm, user=self.operator, target=target)
        self.migrations.append(op)
        return op

    def __call__(self) -> None:
        self.step += 1
        ct = Guest.objects.get(cluster=self.cluster, vmid=201)
        client = pve_client_for(self.cluster)
        try:
            status = client.get(f"nodes/{ct.node.name}/lxc/{ct.vmid}/status/current")["status"]
            client.post(f"nodes/{ct.node.name}/lxc/{ct.vmid}/status/{'stop' if status == 'running' else 'start'}")
        finally:
            client.close()
        last = self.migrations[-1] if self.migrations else None
        if last is None or Operation.objects.get(pk=last.pk).status in ("succeeded", "failed", "cancelled"):
            try:
                self.migrate()
            except Exception:  # the inventory has not caught up with the last move yet: next step
                pass


def bulk_start(page, cluster) -> None:
    """A bulk action from the list, as a person does it: a stopped VM starts, a running one is refused;
    each result streams its own operation panel into the page."""
    for vmid in (104, 100):
        page.check(f"input[name=ids][value='{Guest.objects.get(cluster=cluster, vmid=vmid).pk}']")
    page.select_option("#bulk-action", "start")
    page.click("#guest-bulk-form button[type=submit]")
    page.locator("#guest-bulk-results .bulk-result").first.wait_for()


@pytest.fixture
def slow_clock(pvesim):
    pvesim.admin("POST", "/time-scale", scale=4.0)  # migrations last long enough to watch
    yield
    pvesim.admin("POST", "/time-scale", scale=pvesim.time_scale)


@pytest.mark.parametrize("role_context", ROLES, indirect=True)
def test_every_page_is_quiet_while_the_cluster_changes(role_context, live_server, demo_cluster, beat,  # noqa: F811
                                                       celery_worker, operator, slow_clock, request):
    role = request.node.callspec.params["role_context"]
    routes = ui_routes()
    unknown = [name for name in NOT_PAGES if name not in dict(routes)]
    assert not unknown, f"NOT_PAGES lists routes that no longer exist: {unknown}"
    objects = demo_objects(demo_cluster, operator)
    churn = Churn(demo_cluster, operator)
    objects.operation = churn.migrate()  # its page is watched while it runs
    urls, actions, broken = {}, [], []
    for name, route in routes:
        if name in NOT_PAGES:
            continue
        url = objects.url(route)
        status = role_context.request.get(f"{live_server.url}{url}", max_redirects=0).status
        if status == 405:  # an action: POST only
            actions.append(name)
        elif status == 200:
            urls.setdefault(url, name)
        elif role == "tenant" and status in (302, 403, 404):  # not theirs (or /tenants/ -> their tenant)
            continue
        else:
            broken.append(f"{name} {url}: {status}")
    assert not broken, broken
    favicon = role_context.request.get(f"{live_server.url}/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"].startswith("image/")
    assert len(urls) >= (25 if role == "operator" else 15), urls  # the walk really covers the UI

    findings = Findings()
    todo = list(urls.items())
    visited = []
    while todo:
        batch, todo = todo[:TABS], todo[TABS:]
        pages = []
        for url, name in batch:  # start every load, then wait for them together
            page = role_context.new_page()
            findings.watch(page, f"{name} {url}")
            response = page.goto(f"{live_server.url}{url}", wait_until="commit")
            assert response is not None and response.status == 200, f"{name} {url}: {response and response.status}"
            pages.append(page)
            visited.append(name)
        for page, (url, name) in zip(pages, batch):
            page.wait_for_load_state()
            if name == "guests:guest_list" and role == "operator":  # the bulk picks a globex VM too
                bulk_start(page, demo_cluster)
        churn()
        deadline = time.monotonic() + WATCH_SECONDS
        while time.monotonic() < deadline:
            pages[0].wait_for_timeout(1000)  # lets every tab of the context run its pushes
        for page in pages:
            # After the pushes: no Django template syntax shown (Proxmox's own {{guestname}} is content).
            text = page.inner_text("body")
            if page.evaluate("document.body.classList.contains('live-down')"):
                findings.console.append(f"{page.url}: shows 'Live updates reconnecting' at the end of its watch")
            leaked = re.findall(r"(?:\{[#%]|\{\{ ).{0,40}", text)
            findings.console += [f"{page.url}: raw template text {m!r}" for m in leaked]
            findings.close(page)

    print(f"watched {len(visited)} pages ({len(actions)} action routes skipped), {findings.frames} pushes received")
    report = "\n".join(findings.console + findings.failed)
    assert not findings.console and not findings.failed, f"{len(visited)} pages watched:\n{report}"
    assert findings.frames > 0  # pushes did arrive while pages were watched
    assert any(Operation.objects.get(pk=op.pk).status == "succeeded" for op in churn.migrations)
