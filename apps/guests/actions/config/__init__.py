"""Change a guest's configuration: cores, memory, disks (add, grow), network cards, cloud-init,
tags, description, protection, start on boot; with Proxmox's digest for optimistic locking.

How the edit form gets a fresh config + digest: opening /guests/<pk>/config/ queues the guest's
targeted refresh (guests.guest_refresh: config incl. digest, snapshots, tasks) and the page polls
our database (never Proxmox) until that read has landed, then renders the form from it with the
digest in a hidden field. Every action's worker re-reads the guest the same way when it ends.

How a save runs: the config PUT is synchronous in Proxmox, so the service sends it in the request
with the digest; a conflict or a refused value comes back at once (form banner / API 409 or 400
with Proxmox's exact message) and nothing is queued. Disk resizes are Proxmox tasks: they and the
re-read run as the operation's steps in the worker. Resize-only saves send the digest with the
first resize instead.

Modules: validation (config reading + the change plan), services (the PUT + operation), worker
(Celery task `guests.guest_config`), views (form, pages, `urlpatterns`), api (`api_urlpatterns`).
"""

from ..common import ActionRefused
from .api import GuestConfigAPIView, GuestConfigSerializer, api_urlpatterns
from .services import CONFLICT_TEXT, ConfigConflict, guest_config_update
from .validation import ConfigPlan, plan_changes, resizable_disks, set_props, size_bytes, validate_ssh_keys
from .views import GuestConfigForm, GuestConfigFormView, GuestConfigPageView, urlpatterns
from .worker import guest_config_task, run_config

__all__ = [
    "ActionRefused", "CONFLICT_TEXT", "ConfigConflict", "ConfigPlan", "GuestConfigAPIView", "GuestConfigForm",
    "GuestConfigFormView", "GuestConfigPageView", "GuestConfigSerializer", "api_urlpatterns", "guest_config_task",
    "guest_config_update", "plan_changes", "resizable_disks", "run_config", "set_props", "size_bytes", "urlpatterns",
    "validate_ssh_keys",
]
