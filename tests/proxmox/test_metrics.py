import pytest

from apps.proxmox.metrics import path_template


@pytest.mark.parametrize("path, template", [
    ("/nodes/pve1/tasks/UPID:pve1:0003A1F2:01B3C4D5:67A0B1C2:qmstart:100:root@pam:/status",
     "/nodes/{node}/tasks/{upid}/status"),
    ("nodes/pve1/qemu/100/status/start", "/nodes/{node}/qemu/{vmid}/status/start"),
    ("/nodes/pve2/lxc", "/nodes/{node}/lxc"),
    ("/cluster/resources", "/cluster/resources"),
    ("/cluster/ha/status/current", "/cluster/ha/status/current"),
    ("/cluster/ha/resources/vm:100", "/cluster/ha/resources/{sid}"),
    ("/nodes/pve1/storage/local/content/local:iso/debian.iso", "/nodes/{node}/storage/{storage}/content/{volume}"),
    ("/nodes/pve1/qemu/100/snapshot/before-upgrade/rollback", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback"),
    ("/access/users/root@pam/token/ci", "/access/users/{userid}/token/{tokenid}"),
])
def test_path_template_keeps_label_set_small(path, template):
    assert path_template(path) == template
