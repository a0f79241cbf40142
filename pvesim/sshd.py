"""Each simulated node's SSH server (asyncssh, SFTP only), serving the files Proxmox has no API for.

One listener per node, each with the node's own host key (made at start, stable until pvesim
stops). A client logs in as `root` with a public key installed through the admin API (what an
operator does by adding it to /etc/pve/priv/authorized_keys), and sees:

    /etc/pve/firewall/<vmid>.fw      the guest's firewall state as pve-firewall's file (pvesim.fwfile);
                                     writing it (in place, or a temp file in the same folder renamed
                                     over it) updates pvesim's firewall state, so the API shows
                                     the change; removing it empties the guest's firewall
    /etc/pve/firewall/<other name>   plain files (temp files of an atomic write)
    /var/log/suricata/eve.json       this node's Suricata EVE log; the admin API appends alerts
    /var/log/suricata/eve.json.1     ... and the previous one after a rotation

/etc/pve is one file system for the whole cluster (as pmxcfs is); /var/log is each node's own.
A file written through SSH reads back as written until the API changes the guest's firewall.
A powered-off node's listener drops connections. Exec and shell requests are refused.

Admin API (registered on pvesim.admin's registry, under /pvesim):

    GET  /ssh                          listeners: node -> host, port, host key, fingerprint
    GET|POST|DELETE /ssh/authorized-keys   key=<OpenSSH public key line> (POST adds)
    POST /suricata/alert               node|vmid, signature, src_ip/dest_ip/ports/proto/... (one EVE line)
    POST /suricata/line                node, text: append any line (other event types, garbage)
    POST /suricata/rotate              node [truncate=1]: eve.json -> eve.json.1 (or emptied in place)
    GET  /files                        node, path: a file as the SFTP client would read it
"""

from __future__ import annotations

import asyncio
import json
import logging
import posixpath
import random
import re
import stat as statmod
import threading
import time
from datetime import datetime, timezone

import asyncssh

from . import fwfile
from .admin import admin
from .errors import ApiError
from .params import P

log = logging.getLogger("pvesim.ssh")

FW_DIR = "/etc/pve/firewall"
EVE_DIR = "/var/log/suricata"
EVE_FILES = ("eve.json", "eve.json.1")
DIRS = {"/", "/etc", "/etc/pve", FW_DIR, "/var", "/var/log", EVE_DIR, "/root"}
GUEST_FILE = re.compile(r"^(\d+)\.fw$")
USER = "root"


class Files:
    """The SSH-visible state of one simulated cluster (a new one after /pvesim/reset)."""

    def __init__(self):
        self.authorized: list[asyncssh.SSHKey] = []
        self.eve: dict[str, dict[str, bytearray]] = {}
        self.plain: dict[str, bytes] = {}  # path -> content (files under FW_DIR that are no guest's)
        self.raw: dict[int, tuple[str, str, object]] = {}  # vmid -> (text as written, state digest, guest)
        self.mtime: dict[str, float] = {}
        self.flow = random.Random(11)


def files_of(cluster) -> Files:
    with cluster.lock:
        found = cluster.__dict__.get("_ssh_files")
        if found is None:
            found = cluster.__dict__["_ssh_files"] = Files()
        return found


def _guest_conf(cluster, vmid: int):
    """(guest, its firewall conf or None) of an existing guest; (None, None) otherwise."""
    guest = cluster.guests.get(vmid)
    if guest is None:
        return None, None
    conf = cluster.firewall["guests"].get(vmid)
    if conf is not None and conf.get("guest") is not guest:
        conf = None
    return guest, conf


def read(cluster, node: str, path: str) -> bytes | None:
    """The file's content as the node sees it now, None when there is no such file."""
    from .api.firewall import digest_of

    files = files_of(cluster)
    folder, name = posixpath.split(path)
    with cluster.lock:
        if folder == FW_DIR:
            match = GUEST_FILE.match(name)
            if match and cluster.guests.get(int(match.group(1))) is not None:
                vmid = int(match.group(1))
                guest, conf = _guest_conf(cluster, vmid)
                if conf is None:
                    return None
                raw = files.raw.get(vmid)
                if raw is not None and raw[2] is guest and raw[1] == digest_of(conf):
                    return raw[0].encode()
                text = fwfile.format(conf)
                return text.encode() if text else None
            return files.plain.get(path)
        if folder == EVE_DIR and name in EVE_FILES:
            found = files.eve.get(node, {}).get(name)
            return None if found is None else bytes(found)
    return None


def write(cluster, node: str, path: str, data: bytes) -> None:
    """Store a file; a guest's .fw file becomes that guest's firewall state."""
    from .api.firewall import digest_of, guest_conf

    folder, name = posixpath.split(path)
    if folder != FW_DIR:
        raise asyncssh.SFTPPermissionDenied(f"{path}: read-only here")
    files = files_of(cluster)
    with cluster.lock:
        files.mtime[path] = time.time()
        match = GUEST_FILE.match(name)
        guest = cluster.guests.get(int(match.group(1))) if match else None
        if guest is None:
            files.plain[path] = bytes(data)
            return
        text = data.decode("utf-8", "replace")
        parsed, warnings = fwfile.parse(text)
        for warning in warnings:
            log.warning("%s (%s): %s", path, node, warning)
        conf = guest_conf(cluster, guest)
        for key in ("options", "rules", "ipsets", "aliases"):
            conf[key] = parsed[key]
        files.raw[guest.vmid] = (text, digest_of(conf), guest)


def remove(cluster, node: str, path: str) -> None:
    folder, name = posixpath.split(path)
    files = files_of(cluster)
    with cluster.lock:
        if read(cluster, node, path) is None:
            raise asyncssh.SFTPNoSuchFile(f"{path}: no such file")
        if folder != FW_DIR:
            raise asyncssh.SFTPPermissionDenied(f"{path}: read-only here")
        match = GUEST_FILE.match(name)
        if match and cluster.guests.get(int(match.group(1))) is not None:
            _, conf = _guest_conf(cluster, int(match.group(1)))
            if conf is not None:
                conf.update(options={}, rules=[], ipsets={}, aliases={})
            files.raw.pop(int(match.group(1)), None)
        else:
            files.plain.pop(path, None)


def rename(cluster, node: str, old: str, new: str, *, overwrite: bool) -> None:
    with cluster.lock:
        data = read(cluster, node, old)
        if data is None:
            raise asyncssh.SFTPNoSuchFile(f"{old}: no such file")
        if not overwrite and read(cluster, node, new) is not None:
            raise asyncssh.SFTPFailure(f"{new}: file exists")
        write(cluster, node, new, data)
        remove(cluster, node, old)


def append_eve(cluster, node: str, line: str) -> int:
    """Append one line to the node's eve.json; returns the file's new size."""
    files = files_of(cluster)
    with cluster.lock:
        eve = files.eve.setdefault(node, {}).setdefault("eve.json", bytearray())
        eve += line.rstrip("\n").encode() + b"\n"
        files.mtime[f"{EVE_DIR}/eve.json"] = time.time()
        return len(eve)


def rotate_eve(cluster, node: str, *, truncate: bool = False) -> None:
    files = files_of(cluster)
    with cluster.lock:
        logs = files.eve.setdefault(node, {})
        if truncate:
            logs["eve.json"] = bytearray()
        else:
            logs["eve.json.1"] = logs.get("eve.json", bytearray())
            logs["eve.json"] = bytearray()


# ---- SFTP ---------------------------------------------------------------------------------------

class _Handle:
    def __init__(self, path: str, data: bytes, writable: bool):
        self.path, self.data, self.writable, self.dirty = path, bytearray(data), writable, False


def _attrs(size: int, directory: bool = False, mtime: float | None = None) -> asyncssh.SFTPAttrs:
    now = int(mtime or time.time())
    mode = (statmod.S_IFDIR | 0o755) if directory else (statmod.S_IFREG | 0o640)
    return asyncssh.SFTPAttrs(size=size, uid=0, gid=33 if not directory else 0, permissions=mode, atime=now,
                              mtime=now)


class NodeSFTP(asyncssh.SFTPServer):
    """The SFTP subsystem of one node's SSH server, over `read`/`write`/`rename`/`remove`."""

    def __init__(self, chan, service: "SshService", node: str):
        super().__init__(chan)
        self.service, self.node = service, node

    @property
    def cluster(self):
        return self.service.sim.cluster

    @staticmethod
    def _path(path: bytes) -> str:
        text = path.decode("utf-8", "replace") or "."
        return posixpath.normpath(posixpath.join("/root", text))

    def realpath(self, path):
        return self._path(path).encode()

    def _stat(self, path: str):
        if path in DIRS:
            return _attrs(4096, directory=True)
        data = read(self.cluster, self.node, path)
        if data is None:
            raise asyncssh.SFTPNoSuchFile(f"{path}: no such file or directory")
        return _attrs(len(data), mtime=files_of(self.cluster).mtime.get(path))

    def stat(self, path):
        return self._stat(self._path(path))

    lstat = stat

    def fstat(self, file_obj):
        return _attrs(len(file_obj.data))

    def setstat(self, path, attrs):
        self._stat(self._path(path))

    def fsetstat(self, file_obj, attrs):
        return None

    async def scandir(self, path):
        folder = self._path(path)
        if folder not in DIRS:
            raise asyncssh.SFTPNoSuchFile(f"{folder}: no such directory")
        yield asyncssh.SFTPName(b".", attrs=_attrs(4096, directory=True))
        yield asyncssh.SFTPName(b"..", attrs=_attrs(4096, directory=True))
        for child in sorted(d for d in DIRS if d != "/" and posixpath.dirname(d) == folder):
            yield asyncssh.SFTPName(posixpath.basename(child).encode(), attrs=_attrs(4096, directory=True))
        for name in self._names(folder):
            data = read(self.cluster, self.node, f"{folder}/{name}")
            if data is not None:
                yield asyncssh.SFTPName(name.encode(), attrs=_attrs(len(data)))

    def _names(self, folder: str) -> list[str]:
        cluster, files = self.cluster, files_of(self.cluster)
        with cluster.lock:
            if folder == FW_DIR:
                names = {f"{vmid}.fw" for vmid in cluster.firewall["guests"]}
                names |= {posixpath.basename(p) for p in files.plain}
                return sorted(names)
            if folder == EVE_DIR:
                return sorted(files.eve.get(self.node, {}))
        return []

    def open(self, path, pflags, attrs):
        name = self._path(path)
        if name in DIRS:
            raise asyncssh.SFTPFailure(f"{name}: is a directory")
        current = read(self.cluster, self.node, name)
        if not pflags & asyncssh.FXF_WRITE:
            if current is None:
                raise asyncssh.SFTPNoSuchFile(f"{name}: no such file or directory")
            return _Handle(name, current, writable=False)
        if posixpath.dirname(name) != FW_DIR:
            raise asyncssh.SFTPPermissionDenied(f"{name}: permission denied")
        if current is None and not pflags & asyncssh.FXF_CREAT:
            raise asyncssh.SFTPNoSuchFile(f"{name}: no such file or directory")
        if current is not None and pflags & asyncssh.FXF_EXCL:
            raise asyncssh.SFTPFailure(f"{name}: file exists")
        handle = _Handle(name, b"" if current is None or pflags & asyncssh.FXF_TRUNC else current, writable=True)
        handle.dirty = current is None or bool(pflags & asyncssh.FXF_TRUNC)
        return handle

    def read(self, file_obj, offset, size):
        return bytes(file_obj.data[offset:offset + size])

    def write(self, file_obj, offset, data):
        if not file_obj.writable:
            raise asyncssh.SFTPPermissionDenied("file not opened for writing")
        end = offset + len(data)
        if len(file_obj.data) < offset:
            file_obj.data.extend(b"\0" * (offset - len(file_obj.data)))
        file_obj.data[offset:end] = data
        file_obj.dirty = True
        return len(data)

    def close(self, file_obj):
        if file_obj.writable and file_obj.dirty:
            write(self.cluster, self.node, file_obj.path, bytes(file_obj.data))

    def remove(self, path):
        remove(self.cluster, self.node, self._path(path))

    def rename(self, oldpath, newpath):
        rename(self.cluster, self.node, self._path(oldpath), self._path(newpath), overwrite=False)

    def posix_rename(self, oldpath, newpath):
        rename(self.cluster, self.node, self._path(oldpath), self._path(newpath), overwrite=True)

    def mkdir(self, path, attrs):
        raise asyncssh.SFTPPermissionDenied("permission denied")

    def rmdir(self, path):
        raise asyncssh.SFTPPermissionDenied("permission denied")

    def fsync(self, file_obj):
        return None


# ---- SSH ----------------------------------------------------------------------------------------

class _NodeServer(asyncssh.SSHServer):
    def __init__(self, service: "SshService", node: str):
        self.service, self.node = service, node

    def connection_made(self, conn):
        cluster = self.service.sim.cluster
        found = cluster.nodes.get(self.node)
        if found is None or not found.online:
            conn.abort()  # a powered-off node: the connection goes nowhere

    def begin_auth(self, username):
        return True

    def password_auth_supported(self):
        return False

    def public_key_auth_supported(self):
        return True

    def validate_public_key(self, username, key):
        if username != USER:
            return False
        wanted = key.public_data
        return any(k.public_data == wanted for k in files_of(self.service.sim.cluster).authorized)


class SshService:
    """The nodes' SSH listeners, on an asyncio loop of their own thread. `sim` is the PveServer
    (its `cluster` is replaced on reset; every request reads it anew)."""

    def __init__(self, sim, host: str = "127.0.0.1", base_port: int = 0):
        self.sim, self.host, self.base_port = sim, host, base_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pvesim-ssh", daemon=True)
        self.servers: list = []
        self.listeners: dict[str, dict] = {}

    def start(self) -> dict[str, dict]:
        self.thread.start()
        nodes = sorted(self.sim.cluster.nodes)
        return asyncio.run_coroutine_threadsafe(self._start(nodes), self.loop).result(60)

    async def _start(self, nodes: list[str]) -> dict[str, dict]:
        for index, node in enumerate(nodes):
            key = asyncssh.generate_private_key("ssh-ed25519", comment=f"root@{node}")
            port = self.base_port + index if self.base_port else 0
            server = await asyncssh.create_server(
                lambda node=node: _NodeServer(self, node), self.host, port, server_host_keys=[key],
                sftp_factory=lambda chan, node=node: NodeSFTP(chan, self, node), allow_scp=False,
                reuse_address=True, login_timeout=30)
            self.servers.append(server)
            bound = server.sockets[0].getsockname()[1]
            self.listeners[node] = {
                "host": self.host, "port": bound,
                "host_key": key.export_public_key("openssh").decode().strip(),
                "fingerprint": key.get_fingerprint("sha256"),
            }
        return self.listeners

    def stop(self) -> None:
        async def close():
            for server in self.servers:
                server.close()
                await server.wait_closed()
        if self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
            except Exception:  # stopping anyway
                log.debug("ssh listeners did not close cleanly", exc_info=True)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


# ---- admin API ----------------------------------------------------------------------------------

def _service(server) -> SshService:
    service = getattr(server, "ssh", None)
    if service is None:
        raise ApiError(501, "pvesim runs without its SSH servers (--no-ssh)")
    return service


def _node(server, name: str) -> str:
    if name not in server.cluster.nodes:
        raise ApiError(404, f"no such node '{name}'")
    return name


@admin.get("/ssh", params={})
def ssh_state(server, p):
    return {"listeners": _service(server).listeners,
            "authorized_keys": len(files_of(server.cluster).authorized)}


@admin.get("/ssh/authorized-keys", params={})
def authorized_keys(server, p):
    return [k.export_public_key("openssh").decode().strip() for k in files_of(server.cluster).authorized]


@admin.post("/ssh/authorized-keys", params={"key": P.string(optional=False, max_length=16384)})
def authorized_key_add(server, p):
    """What an operator does on a node: the key goes into (the cluster's) authorized_keys."""
    try:
        key = asyncssh.import_public_key(p["key"].strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ApiError(400, "Parameter verification failed.", {"key": f"not an OpenSSH public key: {exc}"})
    files = files_of(server.cluster)
    with server.cluster.lock:
        if all(k.public_data != key.public_data for k in files.authorized):
            files.authorized.append(key)
        return {"count": len(files.authorized)}


@admin.delete("/ssh/authorized-keys", params={})
def authorized_keys_clear(server, p):
    with server.cluster.lock:
        files_of(server.cluster).authorized.clear()
    return None


def _mac_of(guest) -> str | None:
    for key in sorted(guest.config):
        if re.fullmatch(r"net\d+", key):
            match = re.search(r"(?:^|,)(?:hwaddr|virtio|e1000|rtl8139|vmxnet3|e1000e)=([0-9A-Fa-f:]{17})",
                              str(guest.config[key]))
            if match:
                return match.group(1).upper()
    return None


def _ip_of(guest) -> str | None:
    for key in sorted(guest.config):
        if re.fullmatch(r"(?:net|ipconfig)\d+", key):
            match = re.search(r"(?:^|,)ip=(\d+\.\d+\.\d+\.\d+)", str(guest.config[key]))
            if match:
                return match.group(1)
    return None


@admin.post("/suricata/alert", params={
    "node": P.node(optional=True), "vmid": P.vmid(optional=True),
    "signature": P.string(optional=False, max_length=512), "signature_id": P.integer(minimum=1),
    "category": P.string(max_length=256), "severity": P.integer(minimum=1, maximum=4),
    "action": P.enum(["allowed", "blocked"]), "proto": P.string(max_length=16),
    "src_ip": P.string(max_length=64), "src_port": P.integer(minimum=0, maximum=65535),
    "dest_ip": P.string(max_length=64), "dest_port": P.integer(minimum=0, maximum=65535),
    "src_mac": P.string(max_length=17), "dest_mac": P.string(max_length=17),
    "timestamp": P.string(max_length=40)})
def suricata_alert(server, p):
    """Suricata saw something: one `alert` event line in the node's eve.json. With `vmid`, the
    packet goes to that guest: its node, and its MAC (and static IP) as destination unless given."""
    cluster = server.cluster
    with cluster.lock:
        node = p.get("node")
        guest = None
        if p.get("vmid") is not None:
            guest = cluster.guests.get(int(p["vmid"]))
            if guest is None:
                raise ApiError(404, f"no such guest {p['vmid']}")
            node = node or guest.node
        if not node:
            raise ApiError(400, "Parameter verification failed.", {"node": "node or vmid is required"})
        _node(server, node)
        files = files_of(cluster)
        stamp = p.get("timestamp") or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f%z")
        event = {
            "timestamp": stamp, "flow_id": files.flow.randrange(1, 2 ** 50), "in_iface": "nfq",
            "event_type": "alert", "src_ip": p.get("src_ip") or "203.0.113.5", "src_port": p.get("src_port", 40000),
            "dest_ip": p.get("dest_ip") or (guest and _ip_of(guest)) or "198.51.100.10",
            "dest_port": p.get("dest_port", 22), "proto": (p.get("proto") or "TCP").upper(),
        }
        dest_mac = p.get("dest_mac") or (guest and _mac_of(guest))
        if dest_mac or p.get("src_mac"):
            event["ether"] = {"src_mac": (p.get("src_mac") or "02:00:00:00:00:01").lower(),
                              "dest_mac": (dest_mac or "02:00:00:00:00:02").lower()}
        event["alert"] = {
            "action": p.get("action") or "allowed", "gid": 1, "signature_id": p.get("signature_id", 2001219),
            "rev": 1, "signature": p["signature"], "category": p.get("category") or "Attempted Information Leak",
            "severity": p.get("severity", 2),
        }
        size = append_eve(cluster, node, json.dumps(event, separators=(",", ":")))
    return {"node": node, "size": size, "event": event}


@admin.post("/suricata/line", params={"node": P.node(), "text": P.string(optional=False, max_length=65536)})
def suricata_line(server, p):
    """Append any line (another event type, a partial or broken line) to the node's eve.json."""
    node = _node(server, p["node"])
    return {"node": node, "size": append_eve(server.cluster, node, p["text"])}


@admin.post("/suricata/rotate", params={"node": P.node(), "truncate": P.boolean()})
def suricata_rotate(server, p):
    """logrotate: eve.json becomes eve.json.1 and a new one starts; truncate=1 empties it in place
    (copytruncate)."""
    node = _node(server, p["node"])
    rotate_eve(server.cluster, node, truncate=bool(p.get("truncate")))
    return {"node": node}


@admin.get("/files", params={"node": P.node(), "path": P.string(optional=False, max_length=1024)})
def files_read(server, p):
    node = _node(server, p["node"])
    data = read(server.cluster, node, posixpath.normpath(p["path"]))
    if data is None:
        raise ApiError(404, f"{p['path']}: no such file")
    return {"path": p["path"], "content": data.decode("utf-8", "replace")}
