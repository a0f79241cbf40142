from dataclasses import dataclass
from urllib.parse import urlsplit

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.paginator import Page
from django.db.models import Count
from django.http import QueryDict
from django.shortcuts import get_object_or_404, render
from django.utils.cache import patch_vary_headers
from django.views import View

from apps.core.actions import ActionView
from apps.core.views import CappedPaginator, ObjectDetailView, ObjectListView
from apps.ha.selectors import ceph_health_by_cluster, replication_jobs_for_storage

from . import services
from .choices import UPLOAD_CONTENT
from .filtersets import StorageFilterSet
from .forms import StorageDownloadUrlForm, StorageUploadForm
from .selectors import storage_content_list, storage_list
from .tables import StorageTable

CEPH_TYPES = {"rbd", "cephfs"}  # storages served by the cluster's Ceph


class StorageListView(ObjectListView):
    selector = storage_list
    table_class = StorageTable
    filterset_class = StorageFilterSet
    title = "Storage"

    def get_live_groups(self):
        ids = self.get_queryset().values_list("cluster_id", flat=True).distinct()
        return [f"cluster-{pk}" for pk in ids]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # Ceph health of the listed clusters, as the HA sync stored it (no Proxmox call here).
        ids = self.object_list.order_by().values_list("cluster_id", flat=True).distinct()
        context["ceph_cards"] = list(ceph_health_by_cluster(user=self.request.user, cluster_ids=ids).values())
        return context


CONTENT_GROUPS = [("iso", "ISO images"), ("vztmpl", "CT templates"), ("backup", "Backups"), ("import", "Import"),
                  ("snippets", "Snippets")]
CONTENT_PER_PAGE = 50  # ?per_page= (at most CappedPaginator.max_per_page, as every list)
_CONTENT_FIELDS = ("volid", "content", "size", "format", "vmid", "ctime", "notes")


@dataclass
class ContentGroup:
    label: str
    key: str
    page: Page
    query: QueryDict  # the block's paging parameters, to build this group's page links

    @property
    def page_field(self) -> str:
        return f"{self.key}_page"

    def _query(self, number) -> str:
        query = self.query.copy()
        query[self.page_field] = str(number)
        return query.urlencode()

    @property
    def previous_query(self) -> str:
        return self._query(self.page.previous_page_number()) if self.page.has_previous() else ""

    @property
    def next_query(self) -> str:
        return self._query(self.page.next_page_number()) if self.page.has_next() else ""


def content_params(request) -> QueryDict:
    """The content block's paging parameters (?per_page=, ?<content>_page=): the request's own, or for
    a block reloaded by itself (a live reload asks /content/ bare) those of the page it is on, which
    htmx names in HX-Current-URL (the page links push them into the address bar)."""
    names = {"per_page", *(f"{key}_page" for key, _ in CONTENT_GROUPS)}
    params = request.GET
    if not names.intersection(params) and request.headers.get("HX-Current-URL"):
        params = QueryDict(urlsplit(request.headers["HX-Current-URL"]).query)
    query = QueryDict(mutable=True)
    for name in sorted(names.intersection(params)):
        query[name] = params[name]
    return query


def content_context(storage, user, params: QueryDict | None = None) -> dict:
    """Content grouped the way the page shows it: ISO images, CT templates, backups, others; only
    what `user` may see (a tenant: its own guests' volumes and the ISOs/templates). A page of each
    group (`?per_page=`, `?backup_page=`...): a storage of 10,000 backups rendered them all (issue 11).
    Queries: one count for all groups, then one per group with rows on its page."""
    params = params if params is not None else QueryDict()
    try:
        per_page = int(params.get("per_page") or CONTENT_PER_PAGE)
    except ValueError:
        per_page = CONTENT_PER_PAGE
    scoped = storage_content_list(user=user).filter(storage=storage).select_related(None).only(*_CONTENT_FIELDS)
    keys = [key for key, _ in CONTENT_GROUPS if storage.holds(key)]
    counts = dict(scoped.filter(content__in=keys).order_by().values_list("content").annotate(n=Count("pk")))
    groups = []
    for key, label in CONTENT_GROUPS:
        if key in keys:
            paginator = CappedPaginator(scoped.filter(content=key).order_by("volid"), per_page)
            paginator.count = counts.get(key, 0)  # counted above, with the other groups
            groups.append(ContentGroup(label, key, paginator.get_page(params.get(f"{key}_page")), params))
    return {"storage": storage, "content_groups": groups}


class StorageDetailView(ObjectDetailView):
    selector = storage_list

    def get_live_groups(self):
        return [f"cluster-{self.object.cluster_id}", f"storage-{self.object.pk}"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        storage = self.object
        context.update(content_context(storage, self.request.user, content_params(self.request)))
        context["can_transfer"] = any(storage.holds(c) for c in UPLOAD_CONTENT)
        context["upload_form"] = StorageUploadForm(storage=storage)
        context["download_form"] = StorageDownloadUrlForm(storage=storage)
        if storage.type == "zfspool":
            context["replication_jobs"] = list(replication_jobs_for_storage(user=self.request.user, storage=storage))
        if storage.type in CEPH_TYPES:
            context["ceph"] = ceph_health_by_cluster(user=self.request.user, cluster_ids=[storage.cluster_id]).get(
                storage.cluster_id)
        return context


class _StorageActionView(ActionView):
    """POST: validate, call the service, answer the operation's progress partial (htmx swaps it
    into the page). Bad input answers the form again with its field errors."""

    http_method_names = ["post", "options"]
    context_object_name = "storage"
    form_id = ""

    def get_object(self):
        return get_object_or_404(storage_list(user=self.request.user), pk=self.kwargs["pk"])

    def get_form_kwargs(self):
        return {"storage": self.object}

    def form_invalid(self, form, error="", status=None, **extra):
        # 200 so htmx swaps the form back in with its field errors (it ignores 4xx bodies).
        response = super().form_invalid(form, error, status, **extra)
        response["HX-Retarget"] = f"#{self.form_id}"
        response["HX-Reswap"] = "outerHTML"
        return response


class StorageUploadView(_StorageActionView):
    form_class = StorageUploadForm
    template_name = "storage/partials/storage_upload_form.html"
    form_id = "storage-upload-form"
    audit_action = "storage.storage_upload"

    def perform(self, form):
        data = form.cleaned_data
        return services.storage_upload(storage=self.object, user=self.request.user, content=data["content"],
                                       uploaded_file=data["file"], checksum=data["checksum"],
                                       checksum_algorithm=data["checksum_algorithm"])


class StorageDownloadUrlView(_StorageActionView):
    form_class = StorageDownloadUrlForm
    template_name = "storage/partials/storage_download_form.html"
    form_id = "storage-download-form"
    audit_action = "storage.storage_download_url"

    def perform(self, form):
        data = form.cleaned_data
        return services.storage_download_url(
            storage=self.object, user=self.request.user, content=data["content"], url=data["url"],
            filename=data["filename"], checksum=data["checksum"], checksum_algorithm=data["checksum_algorithm"],
            verify_certificates=data["verify_certificates"])


class StorageRefreshView(LoginRequiredMixin, View):
    """POST: queue a content refresh (one Proxmox call, in a worker); answer the content block."""

    def post(self, request, pk):
        storage = get_object_or_404(storage_list(user=request.user), pk=pk)
        from .tasks import storage_content_refresh

        storage_content_refresh.delay(storage.pk)
        response = render(request, "storage/partials/storage_content.html",
                          {**content_context(storage, request.user, content_params(request)), "refreshing": True})
        patch_vary_headers(response, ("HX-Request",))
        return response


class StorageContentView(LoginRequiredMixin, View):
    """GET: the content block alone (the page reloads it when told the content changed)."""

    def get(self, request, pk):
        storage = get_object_or_404(storage_list(user=request.user), pk=pk)
        response = render(request, "storage/partials/storage_content.html",
                          content_context(storage, request.user, content_params(request)))
        patch_vary_headers(response, ("HX-Request",))
        return response
