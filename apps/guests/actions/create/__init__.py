"""Create a VM (from an ISO image, or by cloning a template) or a container (from a CT template).

    wizard / API -> plan_vm / plan_ct     every check against the synced inventory (DB only), as field errors
                 -> guest_create_vm / _ct  one transaction: capacity hook, vmid reservation, Operation
                 -> Celery guests.guest_create -> run_create (Proxmox: create|clone, config, resize, start)
                 -> targeted re-sync of the new guest, reservation released

Guarantees: nothing reaches Proxmox until the whole request is valid; the vmid is reserved in the
DB (VmidReservation, unique per cluster) before any Proxmox call that uses it; a retried run finds
the guest it already created and does not create a second one; a failed or cancelled run deletes
what it created on Proxmox (purge) and releases the reservation, so nothing is left behind.
The CT root password never enters the operation's kwargs: it waits encrypted on the operation
(PostgreSQL, not only Redis) and is erased when the operation ends.

API: POST /api/v1/guests/create-vm/ and /api/v1/guests/create-ct/ -> 202 with the operation
(two endpoints because a VM and a container take different fields; the OpenAPI schema shows both).
UI: /guests/create/vm/ and /guests/create/ct/ (an htmx wizard; each step re-validates on the server).

Modules: validation (limits, field checks), plans (plan_vm / plan_ct), services (reserve + enqueue;
reserve_vmid is also used by clone, backups), worker (Celery tasks `guests.guest_create`,
`guests.guest_create_cleanup`; sync_guest), api (`api_urlpatterns`), views (wizard, `urlpatterns`).
"""

from .api import CreateCtSerializer, CreateVmSerializer, GuestCreateCtApi, GuestCreateVmApi, api_urlpatterns
from .plans import plan_ct, plan_vm
from .services import guest_create_ct, guest_create_vm, reserve_capacity, reserve_vmid
from .validation import FieldErrors, parse_ssh_keys, parse_tags
from .views import CtWizardForm, GuestCreateWizardView, VmWizardForm, known_bridges, urlpatterns
from .worker import CreateError, guest_create, guest_create_cleanup, run_create, sync_guest

__all__ = [
    "CreateCtSerializer", "CreateError", "CreateVmSerializer", "CtWizardForm", "FieldErrors", "GuestCreateCtApi",
    "GuestCreateVmApi", "GuestCreateWizardView", "VmWizardForm", "api_urlpatterns", "guest_create",
    "guest_create_cleanup", "guest_create_ct", "guest_create_vm", "known_bridges", "parse_ssh_keys", "parse_tags",
    "plan_ct", "plan_vm", "reserve_capacity", "reserve_vmid", "run_create", "sync_guest", "urlpatterns",
]
