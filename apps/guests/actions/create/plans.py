"""plan_vm / plan_ct: every check against the synced inventory as field errors. The database only,
except a template's config, read from Proxmox once when it was never read (placement needs it)."""

from __future__ import annotations

import math
from urllib.parse import quote

from apps.nodes.choices import NodeStatus
from apps.nodes.selectors import cluster_list, node_list
from apps.storage.selectors import storage_content_list, storage_list

from ... import config as guest_config
from ...choices import GuestType
from ...models import Guest
from ...selectors import guest_list
from . import extensions
from .validation import (
    CI_USER,
    CT_DEFAULTS,
    DEFAULTS,
    DNS_NAME,
    FieldErrors,
    GiB,
    LIMITS,
    MiB,
    PASSWORD_MAX,
    PASSWORD_MIN,
    POOL,
    TAG,
    VM_OSTYPES,
    check_range,
    free_bytes,
    network_checks,
    parse_ssh_keys,
    parse_tags,
    tag_problems,
    size_label,
    storage_on_node,
)


def _cluster(errors: FieldErrors, user, data: dict):
    clusters = list(cluster_list(user=user))
    wanted = data.get("cluster")
    if wanted in (None, ""):
        if len(clusters) == 1:
            return clusters[0]
        errors.add("cluster", "choose a cluster" if clusters else "no cluster is registered yet")
        return None
    cluster = next((c for c in clusters if str(c.pk) == str(wanted)), None)
    if cluster is None:
        errors.add("cluster", f"no cluster with id {wanted}")
    return cluster


def _placement(errors: FieldErrors, user, cluster, data: dict, *, needs: list[tuple[str, list]], memory: int | None,
               cores: int | None, space: tuple[str, list, int] | None, allowed_nodes: set[str] | None = None,
               allowed_reason: str = "", prefer: str = "", extras: list | None = None):
    """Pick the node: the one asked for (checked), else `prefer` when it fits, else the online node
    with the most free memory that sees every storage in `needs` [(field, storage rows)]. `space` =
    (field, rows, bytes) to check free space on the chosen node. `allowed_nodes` (with the reason
    why) and each extension's allowed nodes (with its reason per node, e.g. no free GPU there)
    limit the choice. Every node's verdict (can take it, or why not) is left in
    `errors.placement` for the wizard. Returns (node, reason) or (None, "")."""
    nodes = list(node_list(user=user).filter(cluster=cluster).order_by("name"))
    wanted = (data.get("node") or "").strip()
    extras = [e for e in extras or [] if e.allowed_nodes is not None]

    def fits(node) -> list[tuple[str | None, str]]:
        problems = []
        if node.status != NodeStatus.ONLINE:
            problems.append(("node", f"node {node.name} is {node.get_status_display().lower()}"))
        if allowed_nodes is not None and node.name not in allowed_nodes:
            problems.append(("node", allowed_reason or f"only {', '.join(sorted(allowed_nodes))} can take it"))
        for extra in extras:  # a `reported` extra already said it on its own field: shown per node only
            if node.name not in extra.allowed_nodes:
                problems.append((None if extra.reported else "node", extra.refusals.get(node.name) or extra.reason
                                 or f"only {', '.join(sorted(extra.allowed_nodes))} can take it"))
        for field, rows in needs:
            if rows and storage_on_node(rows, node) is None:
                problems.append((field, f"storage '{rows[0].storage}' is not available on node {node.name}"))
        if memory and node.maxmem and memory * MiB > node.maxmem:
            problems.append(("memory", f"node {node.name} has only {size_label(node.maxmem)} of memory"))
        if cores and node.maxcpu and cores > node.maxcpu:
            problems.append(("cores", f"node {node.name} has only {node.maxcpu} CPUs"))
        if space is not None:
            field, rows, need = space
            free = free_bytes(storage_on_node(rows, node))
            if free is not None and need > free:
                problems.append((field, f"not enough free space on '{rows[0].storage}' for node {node.name}: "
                                        f"{size_label(free)} free, {size_label(need)} needed"))
        return problems

    verdicts = {node.name: fits(node) for node in nodes}

    def explained(name: str) -> str:
        """One node's reasons, named by the node unless every reason already names it."""
        text = ", ".join(dict.fromkeys(m for _, m in verdicts[name]))
        return text if all(name in m for _, m in verdicts[name]) else f"{name}: {text}"

    def record(chosen: str = "") -> None:
        errors.placement = [{"node": n.name, "ok": not verdicts[n.name], "chosen": n.name == chosen,
                             "reasons": list(dict.fromkeys(m for _, m in verdicts[n.name])),
                             "notes": [e.notes[n.name] for e in extras if e.notes.get(n.name)]} for n in nodes]

    if wanted:
        node = next((n for n in nodes if n.name == wanted), None)
        if node is None:
            errors.add("node", f"no node named '{wanted}' in cluster {cluster}")
            record()
            return None, ""
        problems = verdicts[node.name]
        for field, message in problems:
            if field:
                errors.add(field, message)
        record("" if problems else node.name)
        return (None, "") if problems else (node, "chosen")
    candidates = [n for n in nodes if not verdicts[n.name]]
    if not candidates:
        record()
        if not any(e.reported for e in extras):
            errors.add("node", "no online node can take it: " + "; ".join(explained(n.name) for n in nodes)
                       if nodes else "the cluster has no nodes")
        return None, ""
    preferred = next((n for n in candidates if n.name == prefer), None)
    if preferred is not None:
        record(preferred.name)
        return preferred, f"automatic: the template's node ({size_label(preferred.maxmem - preferred.mem)} free)"
    best = max(candidates, key=lambda n: (n.maxmem - n.mem, n.name))
    record(best.name)
    return best, f"automatic: most free memory ({size_label(best.maxmem - best.mem)} free)"


def _common(errors: FieldErrors, user, data: dict, kind: str) -> dict:
    out = {}
    out["cores"] = check_range(errors, data, "cores", LIMITS["cores"])
    out["memory"] = check_range(errors, data, "memory", LIMITS["memory_vm" if kind == "qemu" else "memory_ct"], " MiB")
    out["disk_size"] = check_range(errors, data, "disk_size", LIMITS["disk_size"], " GiB")
    out["net"] = network_checks(errors, data)
    tags = parse_tags(data.get("tags"))
    for problem in tag_problems(tags):
        errors.add("tags", problem)
    for tag in tags if "tags" not in errors else []:
        if not TAG.match(tag):
            errors.add("tags", f"'{tag}' is not a valid tag (letters, digits, _ + . -)")
    out["tags"] = tags
    pool = (data.get("pool") or "").strip()
    if pool and not POOL.match(pool):
        errors.add("pool", f"'{pool}' is not a valid pool name (letters, digits, _ -)")
    out["pool"] = pool
    out["start"] = bool(data.get("start"))
    return out


def _disk_storage(errors: FieldErrors, user, cluster, data: dict, content: str, field: str = "storage") -> list:
    name = (data.get(field) or "").strip()
    if not name:
        errors.add(field, "choose a storage")
        return []
    rows = list(storage_list(user=user).filter(cluster=cluster, storage=name))
    if not rows:
        errors.add(field, f"no storage named '{name}' in cluster {cluster}")
        return []
    if not rows[0].holds(content):
        what = "VM disks (content 'images')" if content == "images" else "container volumes (content 'rootdir')"
        errors.add(field, f"storage '{name}' does not hold {what}; it holds: {', '.join(rows[0].content) or 'nothing'}")
        return []
    return rows


def _volume_rows(errors: FieldErrors, user, cluster, volid: str, content: str, field: str) -> list:
    """Storage rows holding volume `volid` (an ISO or CT template) in the synced content lists."""
    if not volid:
        errors.add(field, "choose an ISO image" if content == "iso" else "choose a CT template")
        return []
    items = list(storage_content_list(user=user).filter(storage__cluster=cluster, volid=volid))
    if not items:
        errors.add(field, f"'{volid}' is not in the synced content of cluster {cluster}")
        return []
    if items[0].content != content:
        want = "an ISO image" if content == "iso" else "a CT template (vztmpl)"
        errors.add(field, f"'{volid}' is {items[0].get_content_display()}, not {want}")
        return []
    return [i.storage for i in items]


def _template_placement(user, cluster, template: Guest) -> tuple[set[str] | None, str]:
    """Nodes a clone of `template` may land on (None: any), with the reason, from facts only: the
    template's disks as its config names them, re-read from Proxmox when it was never read (the
    sync does not carry configs), and whether the inventory knows those storages as shared."""
    if not template.config:
        from ...services import guest_refresh  # lazy: the guests services import the actions
        from apps.proxmox import ProxmoxError

        try:
            guest_refresh(guest=template)
        except ProxmoxError as exc:
            return {template.node.name}, (f"the template's disks are not known (reading its configuration failed: "
                                          f"{exc}), so only its own node {template.node.name} is sure to work")
        template.refresh_from_db(fields=["config"])
    storages = dict.fromkeys(_template_storages(template))
    shared = {s.storage for s in storage_list(user=user).filter(cluster=cluster, storage__in=storages, shared=True)}
    local = [name for name in storages if name not in shared]
    if local:
        return {template.node.name}, (f"the template's disks are on {', '.join(local)}, local to node "
                                      f"{template.node.name} (or not in the inventory yet)")
    return None, ""


def _template_storages(template: Guest) -> list[str]:
    names = []
    for disk in guest_config.disks(template.config or {}, "qemu"):
        volume = disk["volume"]
        if ":" in volume and volume != "none":
            names.append(volume.split(":", 1)[0])
    return names


def plan_vm(*, user, data: dict) -> tuple[dict | None, FieldErrors]:
    """Check a VM request against the inventory; returns (plan, {}) or (None, field errors).
    Reads the database (and a template's config once, see _template_placement). The plan holds
    the Proxmox parameters (no vmid yet, no secrets)."""
    data = {**DEFAULTS, **{k: v for k, v in data.items() if v is not None}}
    errors = FieldErrors()
    cluster = _cluster(errors, user, data)
    if cluster is None:
        return None, errors
    source = data.get("source")
    template = None
    iso_rows: list = []
    if source == "iso":
        iso_rows = _volume_rows(errors, user, cluster, (data.get("iso") or "").strip(), "iso", "iso")
    elif source == "template":
        vmid = data.get("template")
        template = guest_list(user=user).filter(cluster=cluster, vmid=vmid).defer(None).first() \
            if str(vmid or "").isdigit() else None
        if template is None:
            errors.add("template", "choose a VM template" if not vmid else f"no guest {vmid} in cluster {cluster}")
        elif template.type != GuestType.QEMU:
            errors.add("template", f"{template.vmid} is a container; use Create container")
            template = None
        elif not template.template:
            errors.add("template", f"VM {template} is not a template (convert it to a template first)")
            template = None
        elif template.node_id is None:
            errors.add("template", f"the node of template {template} is not known yet; wait for the next sync")
            template = None
        if data.get("clone") not in ("linked", "full"):
            errors.add("clone", "must be linked or full")
    else:
        errors.add("source", "must be iso or template")
    name = (data.get("name") or "").strip()
    if not DNS_NAME.match(name):
        errors.add("name", "must be a DNS name: letters, digits and hyphens, dot-separated, not starting or "
                           "ending with a hyphen" if name else "this field is required")
    common = _common(errors, user, data, "qemu")
    ostype = data.get("ostype") or "l26"
    if ostype not in dict(VM_OSTYPES):
        errors.add("ostype", f"must be one of {', '.join(dict(VM_OSTYPES))}")
    full = source == "iso" or data.get("clone") == "full"
    storage_rows = _disk_storage(errors, user, cluster, data, "images") if full else []
    template_gib = math.ceil(template.maxdisk / GiB) if template is not None and template.maxdisk else 0
    if template is not None and common["disk_size"] and common["disk_size"] < template_gib:
        errors.add("disk_size", f"the template's disk is {template_gib} GiB; disks cannot shrink")
    cloudinit = data.get("cloudinit")
    cloudinit = (source == "template") if cloudinit in (None, "") else bool(cloudinit)
    ci = {}
    if cloudinit:
        user_name = (data.get("ci_user") or "").strip()
        if user_name and not CI_USER.match(user_name):
            errors.add("ci_user", "must be a Linux user name (lowercase letters, digits, _ -; at most 32)")
        keys, problems = parse_ssh_keys(data.get("ssh_keys") or "")
        for problem in problems:
            errors.add("ssh_keys", problem)
        ci = {"user": user_name, "keys": keys}
    # Placement: where the disk storage, the ISO and the template's disks can be reached.
    allowed, allowed_reason = None, ""
    needs = [("storage", storage_rows), ("iso", iso_rows)]
    if template is not None:
        allowed, allowed_reason = _template_placement(user, cluster, template)
        if not full:
            template_rows = [list(storage_list(user=user).filter(cluster=cluster, storage=n))
                             for n in _template_storages(template)]
            needs += [("template", rows) for rows in template_rows if rows]
    need_bytes = (max(common["disk_size"] or 0, template_gib) * GiB) if full else 0
    extras = extensions.plan_extras(user=user, cluster=cluster, data=data, kind="qemu", errors=errors)
    node, reason = (None, "")
    if cluster is not None and not any(f in errors for f in ("storage", "iso", "template")):
        node, reason = _placement(errors, user, cluster, data, needs=needs, memory=common["memory"],
                                  cores=common["cores"], allowed_nodes=allowed, allowed_reason=allowed_reason,
                                  extras=extras,  # e.g. only nodes with a free GPU of the profile
                                  # a linked clone stays beside its base unless asked otherwise
                                  prefer=template.node.name if template is not None and not full else "",
                                  space=("storage", storage_rows, need_bytes) if storage_rows else None)
    if errors:
        return None, errors
    net = common["net"]
    net0 = f"virtio,bridge={net['bridge']}" + (f",tag={net['vlan']}" if net["vlan"] else "") + \
        (",firewall=1" if net["firewall"] else "")
    config = {"name": name, "cores": common["cores"], "memory": str(common["memory"]), "ostype": ostype, "net0": net0}
    if common["tags"]:
        config["tags"] = ";".join(common["tags"])
    if cloudinit:
        config["ipconfig0"] = "ip=dhcp" if net["ip"] == "dhcp" else \
            f"ip={net['ip']}" + (f",gw={net['gw']}" if net["gw"] else "")
        if ci["user"]:
            config["ciuser"] = ci["user"]
        if ci["keys"]:
            config["sshkeys"] = quote("\n".join(ci["keys"]) + "\n", safe="")  # Proxmox wants it URL-encoded
        if net["nameservers"]:
            config["nameserver"] = net["nameservers"]
        if net["searchdomain"]:
            config["searchdomain"] = net["searchdomain"]
    plan = {"type": "qemu", "cluster_id": cluster.pk, "node": node.name, "placement": reason, "name": name,
            "source": source, "start": common["start"], "disk_size": common["disk_size"], "cloudinit": cloudinit,
            "storage": storage_rows[0].storage if storage_rows else "", "pool": common["pool"]}
    if source == "iso":
        storage = storage_rows[0].storage
        create = {**config, "sockets": 1, "cpu": "x86-64-v2-AES", "scsihw": "virtio-scsi-single", "agent": "1",
                  "scsi0": f"{storage}:{common['disk_size']},iothread=1,discard=on",
                  "ide2": f"{data['iso'].strip()},media=cdrom", "boot": "order=scsi0;ide2;net0"}
        if cloudinit:
            create["ide0"] = f"{storage}:cloudinit"
        if common["pool"]:
            create["pool"] = common["pool"]
        plan.update(create=create, iso=data["iso"].strip())
    else:
        clone = {"name": name, "full": full}
        if full:
            clone["storage"] = storage_rows[0].storage
        if node.name != template.node.name:
            clone["target"] = node.name
        if common["pool"]:
            clone["pool"] = common["pool"]
        plan.update(clone=clone, config=config, template_vmid=template.vmid, template_node=template.node.name,
                    template_name=template.name, clone_mode="full" if full else "linked")
    extensions.apply(plan, extras)
    return plan, errors


def plan_ct(*, user, data: dict) -> tuple[dict | None, FieldErrors]:
    """Check a container request against the inventory; returns (plan, {}) or (None, field errors).
    Reads the database only. The root password is checked but never put in the plan."""
    data = {**CT_DEFAULTS, **{k: v for k, v in data.items() if v is not None}}
    errors = FieldErrors()
    cluster = _cluster(errors, user, data)
    if cluster is None:
        return None, errors
    ostemplate = (data.get("ostemplate") or "").strip()
    template_rows = _volume_rows(errors, user, cluster, ostemplate, "vztmpl", "ostemplate")
    hostname = (data.get("hostname") or "").strip()
    if not DNS_NAME.match(hostname):
        errors.add("hostname", "must be a DNS name: letters, digits and hyphens, dot-separated, not starting or "
                               "ending with a hyphen" if hostname else "this field is required")
    common = _common(errors, user, data, "lxc")
    swap = check_range(errors, data, "swap", LIMITS["swap"], " MiB")
    password = data.get("password") or ""
    if password and len(password) < PASSWORD_MIN:
        errors.add("password", f"must be at least {PASSWORD_MIN} characters")
    elif len(password) > PASSWORD_MAX:
        errors.add("password", f"must be at most {PASSWORD_MAX} characters")
    keys, problems = parse_ssh_keys(data.get("ssh_keys") or "")
    for problem in problems:
        errors.add("ssh_keys", problem)
    if not password and not keys and not problems:
        errors.add("password", "give a root password or at least one SSH public key")
    storage_rows = _disk_storage(errors, user, cluster, data, "rootdir")
    extras = extensions.plan_extras(user=user, cluster=cluster, data=data, kind="lxc", errors=errors)
    node, reason = (None, "")
    if not any(f in errors for f in ("storage", "ostemplate")):
        node, reason = _placement(
            errors, user, cluster, data, needs=[("storage", storage_rows), ("ostemplate", template_rows)],
            memory=common["memory"], cores=common["cores"], extras=extras,
            space=("storage", storage_rows, (common["disk_size"] or 0) * GiB))
    if errors:
        return None, errors
    net = common["net"]
    net0 = f"name=eth0,bridge={net['bridge']}" + (f",tag={net['vlan']}" if net["vlan"] else "") + \
        (",firewall=1" if net["firewall"] else "") + f",ip={net['ip']}" + (f",gw={net['gw']}" if net["gw"] else "")
    create = {"ostemplate": ostemplate, "hostname": hostname, "cores": common["cores"], "memory": common["memory"],
              "swap": swap, "rootfs": f"{storage_rows[0].storage}:{common['disk_size']}", "net0": net0,
              "unprivileged": bool(data.get("unprivileged"))}
    if data.get("nesting"):
        create["features"] = "nesting=1"
    if keys:
        create["ssh-public-keys"] = "\n".join(keys) + "\n"
    if net["nameservers"]:
        create["nameserver"] = net["nameservers"]
    if net["searchdomain"]:
        create["searchdomain"] = net["searchdomain"]
    if common["tags"]:
        create["tags"] = ";".join(common["tags"])
    if common["pool"]:
        create["pool"] = common["pool"]
    plan = {"type": "lxc", "cluster_id": cluster.pk, "node": node.name, "placement": reason, "name": hostname,
            "source": "vztmpl", "start": common["start"], "disk_size": common["disk_size"],
            "storage": storage_rows[0].storage, "pool": common["pool"], "create": create,
            "has_password": bool(password)}
    extensions.apply(plan, extras)
    return plan, errors
