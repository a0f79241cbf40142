"""GET /cluster/metrics/export: every node's, guest's and storage's metrics in one call."""

import time

from .conftest import error


def ids(data):
    return {m["id"] for m in data}


def test_newest_generation_of_the_whole_cluster(pve):
    answer = pve.cluster.metrics.export.get()
    assert set(answer) == {"data"}
    data = answer["data"]
    assert {"node/pve1", "node/pve2", "node/pve3", "qemu/100", "lxc/200", "storage/pve1/ceph-rbd"} <= ids(data)
    assert len({m["timestamp"] for m in data}) == 1
    for m in data:
        assert set(m) == {"id", "metric", "timestamp", "type", "value"} and m["type"] in ("gauge", "derive")
    node1 = {m["metric"]: m for m in data if m["id"] == "node/pve1"}
    assert set(node1) == {"uptime", "net_in", "net_out", "cpu_avg1", "cpu_avg5", "cpu_avg15", "cpu_max", "cpu_current",
                          "cpu_iowait", "mem_total", "mem_used", "swap_total", "swap_used", "disk_total", "disk_used"}
    assert node1["cpu_max"]["value"] == 64 and node1["net_in"]["type"] == "derive"
    running = {m["metric"] for m in data if m["id"] == "qemu/100"}
    assert {"cpu_current", "mem_used", "net_in", "disk_read", "uptime", "mem_total"} <= running
    stopped = {m["metric"] for m in data if m["id"] == "qemu/9000"}
    assert stopped == {"uptime", "cpu_max", "mem_total", "disk_total"}


def test_history_and_start_time(pve):
    full = pve.cluster.metrics.export.get(history=1)["data"]
    stamps = [m["timestamp"] for m in full]
    assert stamps == sorted(stamps) and len(set(stamps)) == 181  # 30 minutes of 10 s generations
    start = int(time.time()) - 60
    recent = pve.cluster.metrics.export.get(history=1, **{"start-time": start})["data"]
    assert recent and all(m["timestamp"] > start for m in recent) and len({m["timestamp"] for m in recent}) <= 6
    assert pve.cluster.metrics.export.get(**{"start-time": int(time.time()) + 60})["data"] == []


def test_local_only_and_node_list(pve):
    local = pve.cluster.metrics.export.get(**{"local-only": 1})["data"]
    assert {i for i in ids(local) if i.startswith("node/")} == {"node/pve1"} and "qemu/104" not in ids(local)
    listed = pve.cluster.metrics.export.get(**{"node-list": "pve2,pve3"})["data"]
    assert {i for i in ids(listed) if i.startswith("node/")} == {"node/pve2", "node/pve3"}


def test_offline_nodes_are_skipped(sim, pve):
    sim.admin("POST", "/nodes/pve3/power", state="off")
    data = pve.cluster.metrics.export.get()["data"]
    assert "node/pve3" not in ids(data) and "node/pve2" in ids(data)


def test_needs_sys_audit_on_root(sim, pve):
    pve.access.users.post(userid="nobody@pve", password="nobody-pass-1")
    from proxmoxer import ProxmoxAPI

    other = ProxmoxAPI(sim.host, port=sim.info["port"], user="nobody@pve", password="nobody-pass-1", verify_ssl=False)
    assert "Sys.Audit" in str(error(lambda: other.cluster.metrics.export.get(), 403))
