"""Pages of Proxmox's Permissions panel, per cluster: users, groups, roles, ACL, API tokens, pools,
realms and effective privileges. Read live from Proxmox on every page; operators change them
(deletes ask first through the page's confirm dialog), auditors read, everyone else gets 404."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View

from apps.permissions import policy

from . import forms, services
from .selectors import access_cluster, access_clusters, may_view

# A form answered again with its errors: 200, as the generic action view does (a 4xx answer to a
# page the person is using shows as a console error in browsers, though the page handled it).
INVALID = 200

TABS = [("users", "Users"), ("tokens", "API tokens"), ("groups", "Groups"), ("roles", "Roles"),
        ("acl", "Permissions"), ("effective", "Effective privileges"), ("pools", "Pools"), ("realms", "Realms")]


def _form(tab: str, cfg, data=None):
    """The page's form for `tab`, with choices from what Proxmox holds (None for read-only tabs)."""
    if tab == "users":
        return forms.UserForm(data, groups=[g.groupid for g in cfg.groups])
    if tab == "groups":
        return forms.GroupForm(data)
    if tab == "roles":
        return forms.RoleForm(data, privileges=cfg.privileges)
    if tab == "tokens":
        return forms.TokenForm(data, users=[u.userid for u in cfg.users])
    if tab == "acl":
        return forms.AclForm(data, roles=[r.roleid for r in cfg.roles])
    return None


class AccessIndexView(View):
    """The clusters whose access control the user may see (straight to it when there is one)."""

    def get(self, request):
        if not may_view(request.user):
            raise Http404("no such page")
        clusters = access_clusters(user=request.user)
        if len(clusters) == 1:
            return redirect("pveaccess:users", cluster=clusters[0].pk)
        return render(request, "pveaccess/index.html", {"title": "Proxmox access", "clusters": clusters})


class AccessPageView(View):
    """One tab of a cluster's access control; subclasses that change something set `perform`."""

    tab = "users"

    def dispatch(self, request, *args, **kwargs):
        self.cluster = access_cluster(user=request.user, pk=kwargs["cluster"])
        return super().dispatch(request, *args, **kwargs)

    def get(self, request, cluster, **kwargs):
        return self.page(request)

    def page(self, request, form=None, status=200, **extra):
        context = {"title": f"Proxmox access · {self.cluster.name}", "cluster": self.cluster, "tabs": TABS,
                   "tab": self.tab, "may_manage": policy.can(request.user, services.MANAGE),
                   "portal_authid": self.cluster.token_id, **extra}
        try:
            cfg = services.access_config(cluster=self.cluster, with_pools=self.tab == "pools")
            if self.tab == "realms":
                context["realms"] = services.realm_list(cluster=self.cluster)
        except services.Unavailable as exc:
            context["unavailable"] = str(exc)
            return render(request, "pveaccess/unavailable.html", context, status=502)
        context["cfg"] = cfg
        context["form"] = form or _form(self.tab, cfg)
        if self.tab == "tokens":
            context["tokens"] = [t for u in cfg.users for t in u.tokens]
        if self.tab == "users":
            context["edit_form"] = forms.UserEditForm(users=[u.userid for u in cfg.users],
                                                      groups=[g.groupid for g in cfg.groups])
        return render(request, f"pveaccess/{self.tab}.html", context, status=status)


class EffectiveView(AccessPageView):
    tab = "effective"

    def get(self, request, cluster, **kwargs):
        if "authid" not in request.GET:
            return self.page(request, form=forms.EffectiveForm(initial={"path": "/"}))
        form = forms.EffectiveForm(request.GET)
        if not form.is_valid():
            return self.page(request, form=form, status=INVALID)
        try:
            answer = services.effective_privileges(cluster=self.cluster, authid=form.cleaned_data["authid"],
                                                   path=form.cleaned_data["path"])
        except ValidationError as exc:
            _errors_to_form(form, exc)
            return self.page(request, form=form, status=INVALID)
        except services.Unavailable as exc:
            return self.page(request, form=form, status=502, error=str(exc))
        return self.page(request, form=form, answer=answer)


def _errors_to_form(form, exc: ValidationError) -> None:
    for field, reasons in (exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}).items():
        for reason in reasons:
            form.add_error(field if field in form.fields else None, reason)


class AccessActionView(AccessPageView):
    """POST: the tab's form (or the URL's object) -> service -> back to the tab with a message.
    Bad input answers the tab again with the errors on their fields; nothing was sent."""

    http_method_names = ("post",)
    tab_form = False  # True: the tab's own form (a create); else form_class, or nothing (a row's button)
    form_class = None
    success = ""

    def get_form(self, cfg, data):
        if self.tab_form:
            return _form(self.tab, cfg, data)
        return self.form_class(data) if self.form_class else None

    def perform(self, request, data: dict, cfg):
        """Call the service with `cfg`, this request's reading of Proxmox (checked against it)."""
        raise NotImplementedError

    def post(self, request, cluster, **kwargs):
        try:
            cfg = services.access_config(cluster=self.cluster, with_pools=False)
        except services.Unavailable as exc:
            messages.error(request, str(exc))
            return redirect(f"pveaccess:{self.tab}", cluster=self.cluster.pk)
        form = self.get_form(cfg, request.POST)
        if form is not None and not form.is_valid():
            return self._invalid(request, form)
        data = {**(form.cleaned_data if form is not None else {}), **kwargs}
        try:
            result = self.perform(request, data, cfg)
        except ValidationError as exc:
            if not self.tab_form:  # a row's button: the reason as a message
                messages.error(request, "; ".join(m for ms in _field_map(exc).values() for m in ms))
                return redirect(f"pveaccess:{self.tab}", cluster=self.cluster.pk)
            _errors_to_form(form, exc)
            return self._invalid(request, form)
        except services.Unavailable as exc:
            messages.error(request, str(exc))
            return redirect(f"pveaccess:{self.tab}", cluster=self.cluster.pk)
        return self.done(request, data, result)

    def _invalid(self, request, form):
        if not self.tab_form:
            messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
            return redirect(f"pveaccess:{self.tab}", cluster=self.cluster.pk)
        return self.page(request, form=form, status=INVALID)

    def done(self, request, data, result):
        messages.success(request, self.success.format(**data))
        return redirect(f"pveaccess:{self.tab}", cluster=self.cluster.pk)


def _field_map(exc: ValidationError) -> dict:
    return exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}


class UserCreateView(AccessActionView):
    tab_form = True
    tab = "users"
    success = "User {userid} created."

    def perform(self, request, d, cfg):
        services.user_create(actor=request, cluster=self.cluster, userid=d["userid"], password=d["password"],
                             groups=tuple(d["groups"]), comment=d["comment"], email=d["email"],
                             firstname=d["firstname"], lastname=d["lastname"], enable=d["enable"],
                             expire=d["expire"], cfg=cfg, request=request)


class UserEditView(AccessActionView):
    tab = "users"
    success = "User {userid} changed."

    def get_form(self, cfg, data):
        return forms.UserEditForm(data, users=[u.userid for u in cfg.users], groups=[g.groupid for g in cfg.groups])

    def perform(self, request, d, cfg):
        services.user_update(actor=request, cluster=self.cluster, userid=d["userid"], groups=tuple(d["groups"]),
                             enable=d["enable"], cfg=cfg, request=request)


class UserDeleteView(AccessActionView):
    tab = "users"
    success = "User {userid} deleted, with its API tokens and ACL entries."

    def perform(self, request, d, cfg):
        services.user_delete(actor=request, cluster=self.cluster, userid=d["userid"], cfg=cfg, request=request)


class GroupCreateView(AccessActionView):
    tab_form = True
    tab = "groups"
    success = "Group {groupid} created."

    def perform(self, request, d, cfg):
        services.group_create(actor=request, cluster=self.cluster, groupid=d["groupid"], comment=d["comment"],
                              cfg=cfg, request=request)


class GroupDeleteView(AccessActionView):
    tab = "groups"
    success = "Group {groupid} deleted."

    def perform(self, request, d, cfg):
        services.group_delete(actor=request, cluster=self.cluster, groupid=d["groupid"], cfg=cfg, request=request)


class RoleCreateView(AccessActionView):
    tab_form = True
    tab = "roles"
    success = "Role {roleid} created."

    def perform(self, request, d, cfg):
        services.role_create(actor=request, cluster=self.cluster, roleid=d["roleid"], privs=tuple(d["privs"]),
                             cfg=cfg, request=request)


class RoleDeleteView(AccessActionView):
    tab = "roles"
    success = "Role {roleid} deleted."

    def perform(self, request, d, cfg):
        services.role_delete(actor=request, cluster=self.cluster, roleid=d["roleid"], cfg=cfg, request=request)


class TokenCreateView(AccessActionView):
    tab_form = True
    tab = "tokens"

    def perform(self, request, d, cfg):
        return services.token_create(actor=request, cluster=self.cluster, userid=d["userid"], name=d["name"],
                                     privsep=d["privsep"], expire=d["expire"], comment=d["comment"],
                                     cfg=cfg, request=request)

    def done(self, request, data, created):
        # Rendered, not redirected: Proxmox shows the secret this once and the portal keeps none.
        return self.page(request, created=created)


class TokenDeleteView(AccessActionView):
    tab = "tokens"
    success = "API token {userid}!{name} deleted: clients using it are refused from now on."

    def perform(self, request, d, cfg):
        services.token_delete(actor=request, cluster=self.cluster, userid=d["userid"], name=d["name"],
                              cfg=cfg, request=request)


class AclAddView(AccessActionView):
    tab_form = True
    tab = "acl"
    success = "{roleid} given to {type} {ugid} on {path}."

    def perform(self, request, d, cfg):
        d["path"] = services.acl_add(actor=request, cluster=self.cluster, path=d["path"], roleid=d["roleid"],
                                     type=d["type"], ugid=d["ugid"], propagate=d["propagate"], cfg=cfg, request=request)


class AclRemoveView(AccessActionView):
    tab = "acl"
    form_class = forms.AclRemoveForm
    success = "{roleid} of {type} {ugid} on {path} removed."

    def perform(self, request, d, cfg):
        services.acl_remove(actor=request, cluster=self.cluster, path=d["path"], roleid=d["roleid"], type=d["type"],
                            ugid=d["ugid"], cfg=cfg, request=request)
