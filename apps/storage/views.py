from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, render
from django.utils.cache import patch_vary_headers
from django.views import View

from apps.core.models import AuditResult
from apps.core.services import audit_log
from apps.core.views import ObjectDetailView, ObjectListView
from apps.operations.live import progress_context

from . import services
from .choices import UPLOAD_CONTENT
from .filtersets import StorageFilterSet
from .forms import StorageDownloadUrlForm, StorageUploadForm
from .selectors import storage_list
from .tables import StorageTable


class StorageListView(ObjectListView):
    selector = storage_list
    table_class = StorageTable
    filterset_class = StorageFilterSet
    title = "Storage"

    def get_live_groups(self):
        ids = self.get_queryset().values_list("cluster_id", flat=True).distinct()
        return [f"cluster-{pk}" for pk in ids]


def content_context(storage) -> dict:
    """Content grouped the way the page shows it: ISO images, CT templates, backups, others."""
    rows = list(storage.contents.order_by("content", "volid"))
    groups = [("iso", "ISO images"), ("vztmpl", "CT templates"), ("backup", "Backups"),
              ("import", "Import"), ("snippets", "Snippets")]
    return {"storage": storage, "content_groups": [
        (label, key, [r for r in rows if r.content == key]) for key, label in groups if storage.holds(key)]}


class StorageDetailView(ObjectDetailView):
    selector = storage_list

    def get_live_groups(self):
        return [f"cluster-{self.object.cluster_id}", f"storage-{self.object.pk}"]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        storage = self.object
        context.update(content_context(storage))
        context["can_transfer"] = any(storage.holds(c) for c in UPLOAD_CONTENT)
        context["upload_form"] = StorageUploadForm(storage=storage)
        context["download_form"] = StorageDownloadUrlForm(storage=storage)
        return context


class _StorageActionView(LoginRequiredMixin, View):
    """POST: validate, call the service, answer the operation's progress partial (htmx swaps it
    into the page). Bad input answers the form again with its field errors."""

    form_class = None
    template_name = ""
    form_id = ""
    action = ""

    def get_storage(self, pk):
        return get_object_or_404(storage_list(user=self.request.user), pk=pk)

    def run(self, storage, form):
        raise NotImplementedError

    def post(self, request, pk):
        storage = self.get_storage(pk)
        form = self.form_class(request.POST, request.FILES, storage=storage)
        if form.is_valid():
            try:
                operation = self.run(storage, form)
            except ValidationError as exc:
                for field, messages in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, messages)
            else:
                audit_log(user=request.user, action=self.action, target=storage, result=AuditResult.ACCEPTED,
                          request=request, detail={"operation": str(operation.pk)})
                response = render(request, "operations/partials/operation_progress.html",
                                  progress_context(operation))
                patch_vary_headers(response, ("HX-Request",))
                return response
        # 200 so htmx swaps the form back in with its field errors (it ignores 4xx bodies).
        response = render(request, self.template_name, {"storage": storage, "form": form})
        response["HX-Retarget"] = f"#{self.form_id}"
        response["HX-Reswap"] = "outerHTML"
        patch_vary_headers(response, ("HX-Request",))
        return response


class StorageUploadView(_StorageActionView):
    form_class = StorageUploadForm
    template_name = "storage/partials/storage_upload_form.html"
    form_id = "storage-upload-form"
    action = "storage.storage_upload"

    def run(self, storage, form):
        data = form.cleaned_data
        return services.storage_upload(storage=storage, user=self.request.user, content=data["content"],
                                       uploaded_file=data["file"], checksum=data["checksum"],
                                       checksum_algorithm=data["checksum_algorithm"])


class StorageDownloadUrlView(_StorageActionView):
    form_class = StorageDownloadUrlForm
    template_name = "storage/partials/storage_download_form.html"
    form_id = "storage-download-form"
    action = "storage.storage_download_url"

    def run(self, storage, form):
        data = form.cleaned_data
        return services.storage_download_url(
            storage=storage, user=self.request.user, content=data["content"], url=data["url"],
            filename=data["filename"], checksum=data["checksum"], checksum_algorithm=data["checksum_algorithm"],
            verify_certificates=data["verify_certificates"])


class StorageRefreshView(LoginRequiredMixin, View):
    """POST: queue a content refresh (one Proxmox call, in a worker); answer the content block."""

    def post(self, request, pk):
        storage = get_object_or_404(storage_list(user=request.user), pk=pk)
        from .tasks import storage_content_refresh

        storage_content_refresh.delay(storage.pk)
        response = render(request, "storage/partials/storage_content.html",
                          {**content_context(storage), "refreshing": True})
        patch_vary_headers(response, ("HX-Request",))
        return response


class StorageContentView(LoginRequiredMixin, View):
    """GET: the content block alone (the page reloads it when told the content changed)."""

    def get(self, request, pk):
        storage = get_object_or_404(storage_list(user=request.user), pk=pk)
        response = render(request, "storage/partials/storage_content.html", content_context(storage))
        patch_vary_headers(response, ("HX-Request",))
        return response
