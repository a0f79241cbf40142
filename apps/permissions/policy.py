"""The one policy: who is acting (Actor), what they may see (visible) and do (can / check).

Rules are data: ACTIONS maps each action to the roles allowed to do it, and every model's
visibility for tenant users is one Q registered by the app that owns the model
(register_scope, in its AppConfig.ready). Operators and auditors see everything; a model with
no registered rule shows tenant users nothing. Auditors and read-only tokens may only do the
actions auditors are listed for (those are the reads), whatever their other roles.

Services call check(); views and API views only translate its answer: NotVisible is an Http404,
Denied a PermissionDenied (403). check() audits the denial itself.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable

from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from .choices import TenantRole

OPERATOR = "operator"
AUDITOR = "auditor"
TENANT_ADMIN = "tenant_admin"
TENANT_MEMBER = "tenant_member"
# Held on one object only: the user who created it (obj.created_by_id) may do what lists OWNER.
OWNER = "owner"
ROLES = (OPERATOR, AUDITOR, TENANT_ADMIN, TENANT_MEMBER, OWNER)

_READ = frozenset({OPERATOR, AUDITOR, TENANT_ADMIN, TENANT_MEMBER})
_TENANT_WRITE = frozenset({OPERATOR, TENANT_ADMIN, TENANT_MEMBER})
_TENANT_ADMIN_WRITE = frozenset({OPERATOR, TENANT_ADMIN})
_OPERATOR = frozenset({OPERATOR})
_OPERATOR_READ = frozenset({OPERATOR, AUDITOR})

# action -> roles allowed. An action auditors may do is a read (allowed to read-only tokens);
# every other action is a write. A tenant admin also holds the tenant member role.
ACTIONS: dict[str, frozenset[str]] = {
    # reads (what is visible is decided by the scope rules; these gate whole pages/features)
    "guest.view": _READ,
    "cluster.view": _READ,
    "node.view": _READ,
    "storage.view": _READ,
    "gpu.view": _READ,
    "operation.view": _READ,
    "audit.view": _READ,
    "tenant.view": _READ,
    "quota.view": _READ,
    "monitoring.view": _OPERATOR_READ,  # health details, metrics
    "infrastructure.view": _OPERATOR_READ,  # cluster, node and GPU pages in the navigation (tenants: placement only)
    "ha.view": _OPERATOR_READ,  # the HA page: quorum, rules, every service (tenants: their guests' state only)
    # a tenant's guests: its members act on them
    "guest.create": _TENANT_WRITE,
    "guest.power": _TENANT_WRITE,
    "guest.clone": _TENANT_WRITE,
    "guest.template": _TENANT_WRITE,
    "guest.delete": _TENANT_WRITE,
    "guest.config": _TENANT_WRITE,
    "guest.snapshot": _TENANT_WRITE,
    "guest.backup": _TENANT_WRITE,
    "guest.restore": _TENANT_WRITE,
    "guest.lease_extend": _TENANT_WRITE,
    "storage.upload": _TENANT_WRITE,
    "storage.download": _TENANT_WRITE,
    "storage.content_delete": _TENANT_WRITE,
    # firewall: a guest's rules, options, IP sets and aliases, and the tenant's own security groups
    # and IP sets, are its members'; the datacenter's and nodes' firewall is the operators'
    "firewall.view": _READ,
    "firewall.edit": _TENANT_WRITE,
    "firewall.datacenter_view": _OPERATOR_READ,
    "firewall.manage": _OPERATOR,
    # placement and infrastructure: operators only
    "guest.migrate": _OPERATOR,
    "backup_job.manage": _OPERATOR,
    "cluster.manage": _OPERATOR,
    "node.manage": _OPERATOR,
    "storage.manage": _OPERATOR,
    "gpu.refresh": _OPERATOR,
    "gpu_profile.manage": _OPERATOR,
    "ha.manage": _OPERATOR,  # HA resources, rules, maintenance, replication (Sys.Console on / in Proxmox)
    "operation.cancel": _TENANT_WRITE | {OWNER},
    # the tenant itself
    "tenant.manage": _OPERATOR,
    "membership.manage": _TENANT_ADMIN_WRITE,
    "token.manage": _TENANT_ADMIN_WRITE,
    "token.create": _TENANT_WRITE,  # one's own tokens
    "quota.set": _OPERATOR,
    "quota.request": _TENANT_ADMIN_WRITE,
    "quota.decide": _OPERATOR,  # approve or decline a tenant's quota request
    "approval.decide": _OPERATOR,
    "approval.withdraw": _TENANT_ADMIN_WRITE | {OWNER},  # the requester, or the tenant's admins
    "lease.set": _OPERATOR,  # set or clear any guest's expiry (owners only extend theirs)
    # Proxmox's own users, groups, roles, ACL and API tokens (apps/pveaccess): auditors read them
    "pveaccess.view": _OPERATOR_READ,
    "pveaccess.manage": _OPERATOR,
    "guest.console": _TENANT_WRITE,  # unless operators withheld consoles from the tenant (a gate)
    "node.console": _OPERATOR,  # a shell on a Proxmox node
}

# action -> further refusals, registered by the app owning their data: fn(actor, obj) -> reason or None.
_GATES: dict[str, list[Callable]] = {}


def register_gate(action: str, fn: Callable) -> None:
    _roles_for(action)  # unknown actions fail at start-up
    _GATES.setdefault(action, []).append(fn)


def is_read(action: str) -> bool:
    return AUDITOR in _roles_for(action)


def _roles_for(action: str) -> frozenset[str]:
    try:
        return ACTIONS[action]
    except KeyError:
        raise ValueError(f"action: unknown action {action!r}; add it to apps.permissions.policy.ACTIONS") from None


class NotVisible(Http404):
    """The object is not the actor's to see: answered 404, as if it did not exist."""


class Denied(PermissionDenied):
    """The actor sees the object but may not do this to it: answered 403. Raised only after its
    audit entry is written, so action views and API actions do not audit it again."""

    audited = True


@dataclass(frozen=True)
class Actor:
    user: Any
    tenant: Any = None  # permissions.Tenant or None
    token: Any = None  # permissions.ApiToken or None (session, or DRF's plain authtoken)
    is_operator: bool = False
    is_auditor: bool = False
    role: str | None = None  # "admin" | "member" in `tenant`
    read_only: bool = False
    roles: frozenset[str] = field(default=frozenset())

    @property
    def tenant_id(self) -> int | None:
        return self.tenant.pk if self.tenant is not None else None

    @property
    def is_authenticated(self) -> bool:
        return bool(self.user is not None and self.user.is_authenticated and self.user.is_active)

    @property
    def sees_everything(self) -> bool:
        return self.is_authenticated and (self.is_operator or self.is_auditor)


ANONYMOUS = Actor(user=None)


def _user_is_operator(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def _user_is_auditor(user) -> bool:
    from .models import AUDITORS_GROUP

    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.groups.filter(name=AUDITORS_GROUP).exists()


def _build(user, tenant, role, token) -> Actor:
    operator = _user_is_operator(user)
    auditor = not operator and _user_is_auditor(user)  # operators read everything anyway
    roles = set()
    if operator:
        roles.add(OPERATOR)
    if auditor:
        roles.add(AUDITOR)
    if tenant is not None and role == TenantRole.ADMIN:
        roles |= {TENANT_ADMIN, TENANT_MEMBER}
    elif tenant is not None and role == TenantRole.MEMBER:
        roles.add(TENANT_MEMBER)
    read_only = (auditor and not operator) or bool(token is not None and getattr(token, "read_only", False))
    return Actor(user=user, tenant=tenant, token=token, is_operator=operator, is_auditor=auditor,
                 role=role, read_only=read_only, roles=frozenset(roles))


def _membership(user, tenant_id=None):
    from .models import Membership

    memberships = Membership.objects.select_related("tenant").filter(user=user).order_by("tenant__name")
    if tenant_id is not None:
        chosen = memberships.filter(tenant_id=tenant_id).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def actor_for_user(user, tenant=None) -> Actor:
    """The actor for `user` (workers, websockets, tests): in `tenant` (a Tenant or its pk) when the
    user is a member of it, else in their first tenant by name (None for users of no tenant)."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return ANONYMOUS if user is None else Actor(user=user)
    tenant_id = getattr(tenant, "pk", tenant)
    membership = _membership(user, tenant_id)
    if membership is None:
        return _build(user, None, None, None)
    return _build(user, membership.tenant, membership.role, None)


def _actor_for_token(user, token) -> Actor:
    """An ApiToken binds the request to its tenant (the user must still be a member of it)."""
    if token.tenant_id is None:
        return _build(user, None, None, token)
    from .models import Membership

    membership = Membership.objects.filter(user=user, tenant_id=token.tenant_id).first()
    if membership is None:  # no longer a member: the token sees nothing of the tenant
        return _build(user, None, None, token)
    return _build(user, token.tenant, membership.role, token)


SESSION_TENANT_KEY = "tenant_id"


def actor_for_request(request) -> Actor:
    """The actor of a Django or DRF request: the token's tenant for an ApiToken (knox), else the
    session's active tenant (request.session["tenant_id"], default: the first membership).
    Computed once per (user, auth) pair and cached on the request."""
    from .models import ApiToken

    user = getattr(request, "user", None)
    auth = getattr(request, "auth", None)
    key = (id(user), id(auth), _session_tenant(request))
    cached = getattr(request, "_policy_actor", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    if user is None or not user.is_authenticated:
        actor = ANONYMOUS
    elif isinstance(auth, ApiToken):
        actor = _actor_for_token(user, auth)
    else:  # session, or DRF's plain authtoken: the session's rules
        actor = actor_for_user(user, _session_tenant(request))
    try:
        request._policy_actor = (key, actor)
    except AttributeError:
        pass
    return actor


def _session_tenant(request):
    session = getattr(request, "session", None)
    if session is None:
        return None
    try:
        return session.get(SESSION_TENANT_KEY)
    except Exception:  # a session backend failing must not break who-is-acting
        return None


# The request (or websocket connection) being served: selectors called with `user=request.user`
# get that request's actor (its token, read-only flag and active tenant), not a default one.
_current: ContextVar = ContextVar("policy_current_request", default=None)


def serving(source):
    """Make `source` (a request, or any object with user/auth/session) the current one; returns
    the token for `_current.reset`."""
    return _current.set(source)


def done_serving(token) -> None:
    _current.reset(token)


def as_actor(who) -> Actor:
    """An Actor from an Actor, a request's lazy actor, a request, or a User (the current
    request's actor when it is that request's user)."""
    if isinstance(who, Actor):
        return who
    if isinstance(who, LazyActor):
        return who.resolve()
    if who is None:
        return ANONYMOUS
    if hasattr(who, "META") or hasattr(who, "_request"):
        return actor_for_request(who)
    current = _current.get()
    if current is not None and getattr(who, "is_authenticated", False):
        current_user = getattr(current, "user", None)
        if current_user is not None and getattr(current_user, "pk", None) == who.pk:
            return actor_for_request(current)
    return actor_for_user(who)


def actor_is_operator(who) -> bool:
    """Operator = an active staff user (whatever tenant or token they act through)."""
    if isinstance(who, (Actor, LazyActor)):
        return bool(who.is_operator and who.is_authenticated)
    return _user_is_operator(who)


class LazyActor:
    """`request.actor`: resolved on use, so a DRF request's actor reflects DRF's authentication
    (token or session) even when the middleware ran before it."""

    __slots__ = ("_request",)

    def __init__(self, request):
        self._request = request

    def resolve(self) -> Actor:
        return actor_for_request(self._request)

    def __getattr__(self, name):
        return getattr(self.resolve(), name)

    def __bool__(self):
        return True

    def __repr__(self):
        return f"<LazyActor {self.resolve()!r}>"


SAFE_METHODS = ("GET", "HEAD", "OPTIONS", "TRACE")
# Writes a read-only actor may still send: leaving (and entering) a session changes nothing.
READ_ONLY_EXEMPT_URL_NAMES = {"login", "logout", "tenant_switch"}  # switching tenants changes nothing


class ActorMiddleware:
    """Puts `request.actor` (a LazyActor) on every request; DRF requests read it through theirs.

    Also refuses (403, audited) every write method from a read-only actor (an auditor's session),
    whatever the view; DRF's ReadOnlyActorPermission does the same for token-authenticated calls."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.actor = LazyActor(request)
        token = serving(request)
        try:
            return self.get_response(request)
        finally:
            done_serving(token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method in SAFE_METHODS:
            return None
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name in READ_ONLY_EXEMPT_URL_NAMES:
            return None
        actor = actor_for_request(request)
        if actor.is_authenticated and actor.read_only:
            from apps.core.models import AuditResult
            from apps.core.services import audit_log

            audit_log(user=actor.user, action="core.write_refused", target=request.path[:200],
                      result=AuditResult.DENIED, request=request,
                      detail={"method": request.method, "reason": "read-only: auditors change nothing"})
            raise Denied("read-only: auditors change nothing")
        return None


# --- visibility -------------------------------------------------------------------------------

ScopeRule = Callable[[Actor], "Q | None"]
_scopes: dict[type, ScopeRule] = {}


def register_scope(model: type[Model], fn: ScopeRule) -> None:
    """What a tenant user may see of `model`: fn(actor) -> Q (None: everything). Operators and
    auditors are handled here; fn is asked only for other authenticated actors."""
    _scopes[model] = fn


def registered_scopes() -> dict[type, ScopeRule]:
    return dict(_scopes)


def _rule_for(model) -> ScopeRule | None:
    for klass in model.__mro__:
        if klass in _scopes:
            return _scopes[klass]
    concrete = getattr(model._meta, "concrete_model", None)
    return _scopes.get(concrete)


def visible(actor, queryset: QuerySet) -> QuerySet:
    """`queryset` narrowed to what `actor` may see (see the module docstring)."""
    actor = as_actor(actor)
    if not actor.is_authenticated:
        return queryset.none()
    if actor.sees_everything:
        return queryset
    rule = _rule_for(queryset.model)
    if rule is None:
        return queryset.none()
    condition = rule(actor)
    if condition is None:
        return queryset
    return queryset.filter(condition)


def is_visible(actor, obj: Model) -> bool:
    actor = as_actor(actor)
    if actor.sees_everything:
        return True
    return visible(actor, type(obj)._default_manager.filter(pk=obj.pk)).exists()


def tenant_q(actor: Actor, path: str = "tenant") -> Q:
    """Q for rows whose `<path>` is the actor's tenant (nothing when they have none)."""
    if actor.tenant_id is None:
        return Q(pk__in=[])
    return Q(**{f"{path}_id": actor.tenant_id})


# --- actions ----------------------------------------------------------------------------------


def can(actor, action: str, obj: Model | None = None) -> bool:
    """May `actor` do `action` (on `obj`, which they must also see)? ValueError for unknown actions."""
    return _refusal(as_actor(actor), action, obj) is None


def _refusal(actor: Actor, action: str, obj) -> str | None:
    """None when allowed, else "not_visible" or the reason the action is denied."""
    allowed = _roles_for(action)
    if not actor.is_authenticated:
        return "not logged in"
    if obj is not None and not is_visible(actor, obj):
        return "not_visible"
    roles = actor.roles | ({OWNER} if _owns(actor, obj) else set())
    if not (roles & allowed):
        if not roles:
            return "you belong to no tenant"
        return f"your role may not {action}"
    if actor.read_only and AUDITOR not in allowed:
        return "read-only: " + ("auditors change nothing" if actor.is_auditor and not actor.is_operator
                                else "this token may not change anything")
    for gate in _GATES.get(action, ()):
        reason = gate(actor, obj)
        if reason:
            return reason
    return None


def _owns(actor: Actor, obj) -> bool:
    owner_id = getattr(obj, "created_by_id", None) if obj is not None else None
    return owner_id is not None and owner_id == getattr(actor.user, "pk", None)


def check(actor, action: str, obj: Model | None = None, *, request=None) -> None:
    """Raise NotVisible (404) when `obj` is not the actor's to see, Denied (403, audited with
    result "denied") when they see it but may not do `action`. Call it before opening the
    transaction that does the work: the denial's audit entry is written in the caller's one."""
    actor = as_actor(actor)
    reason = _refusal(actor, action, obj)
    if reason is None:
        return
    if reason == "not_visible":
        raise NotVisible(f"no such {obj._meta.verbose_name}")
    from apps.core.models import AuditResult
    from apps.core.services import audit_log

    if request is None:
        current = _current.get()
        request = current if hasattr(current, "META") else None  # the request being served, if any
    request = getattr(request, "_request", request)  # DRF's wrapper: flag the HttpRequest itself
    # One entry per refusal and request: a view that asks again while answering (a dialog
    # re-rendered with the reason) must not record the same denial twice.
    key = (action, obj._meta.label_lower if obj is not None else "", getattr(obj, "pk", None))
    seen = getattr(request, "_denials_audited", None) if request is not None else None
    if seen is not None and key in seen:
        raise Denied(f"{reason}")
    if request is not None:
        request._denials_audited = (seen or set()) | {key}
    audit_log(user=actor.user, action=action, target=obj, result=AuditResult.DENIED, request=request,
              detail={"reason": reason, **({"tenant": actor.tenant.slug} if actor.tenant is not None else {}),
                      **({"token": actor.token.name} if getattr(actor.token, "name", None) else {})},
              tenant_id=actor.tenant_id)
    raise Denied(f"{reason}")


def placement_pool(actor, cluster_id: int, requested: str = "") -> str:
    """The Proxmox pool a new guest (create, clone, restore) goes in: a tenant user's always
    goes in their tenant's pool on that cluster (ValidationError naming `pool` when the tenant
    has none there); operators choose (`requested`, may be empty)."""
    from django.core.exceptions import ValidationError

    from .models import TenantPool

    actor = as_actor(actor)
    if actor.is_operator:
        return requested or ""
    pools = TenantPool.objects.filter(tenant_id=actor.tenant_id, cluster_id=cluster_id)
    pool = pools.values_list("pool", flat=True).first()
    if actor.tenant_id is None or pool is None:
        raise ValidationError({"pool": ["your tenant has no pool on this cluster; ask an operator for one"]})
    if requested and requested != pool:
        raise ValidationError({"pool": [f"guests of {actor.tenant} go in its pool {pool!r}"]})
    return pool


def pool_tenant(cluster_id: int, pool: str | None) -> int | None:
    """Id of the tenant owning `pool` on the cluster (None: no pool, or not a tenant's)."""
    if not pool:
        return None
    from .models import TenantPool

    return TenantPool.objects.filter(cluster_id=cluster_id, pool=pool).values_list("tenant_id", flat=True).first()
