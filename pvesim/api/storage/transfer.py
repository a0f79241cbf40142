"""Uploads and download-url into a storage (iso, vztmpl, import), with checksum checks."""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid

from ...errors import ApiError, TaskError
from ...params import P
from ...router import api
from ...state import GiB, MiB, Cluster, Storage, Volume
from .schema import FILE_BASED
from .volumes import storage_check, volume_path


# ---- upload / download-url ---------------------------------------------------------------------

_EXTENSIONS = {"iso": (r"\.(iso|img)$", "missing '.iso' or '.img' extension"),
               "vztmpl": (r"\.tar\.([gx]z|zst|bz2)$", "missing '.tar.gz', '.tar.xz' or '.tar.zst' extension"),
               "import": (r"\.(ova|ovf|qcow2|raw|vmdk)$", "invalid filename or wrong extension")}


def _target_file(ctx, p: dict) -> tuple[Storage, str, str]:
    cluster = ctx.cluster
    st = storage_check(cluster, p["storage"], p["node"])
    content = p["content"]
    filename = re.sub(r"[^-a-zA-Z0-9_.]", "_", re.sub(r"^.*[/\\]", "", p["filename"].strip()))
    pattern, message = _EXTENSIONS[content]
    if not re.search(pattern, filename, re.I):
        raise ApiError(400, "Parameter verification failed.", {"filename": message})
    if st.type not in FILE_BASED:
        raise ApiError(500, f"can't upload to storage type '{st.type}'")
    if content not in st.content:
        raise ApiError(500, f"storage '{st.storage}' does not support '{content}' content")
    volname = f"{content}/{filename}"
    return st, filename, volname


def _checksum_ok(p: dict, data: bytes | None) -> tuple[str, str] | None:
    """(algorithm, expected) when a checksum was given; raises 400 on a half-given pair."""
    if bool(p.get("checksum")) != bool(p.get("checksum-algorithm")):
        missing = "checksum-algorithm" if p.get("checksum") else "checksum"
        raise ApiError(400, "Parameter verification failed.", {missing: "missing parameter"})
    if p.get("checksum"):
        return p["checksum-algorithm"], p["checksum"].strip().lower()
    return None


_UPLOAD_PARAMS = {
    "node": P.node(), "storage": P.storage(optional=False), "content": P.enum(["iso", "vztmpl", "import"], optional=False),
    "filename": P.string(optional=False, max_length=255), "checksum": P.string(),
    "checksum-algorithm": P.enum(["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]),
}


@api.post("/nodes/{node}/storage/{storage}/upload", params={
    **_UPLOAD_PARAMS, "tmpfilename": P.string(pattern=r"/var/tmp/pveupload-[0-9a-f]+")}, proxyto="node")
def upload(ctx, p):
    """The simulator takes no file body: the stored file's bytes are its name (see upload_checksum)."""
    ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateTemplate")
    cluster, node = ctx.cluster, p["node"]
    body = p["filename"].encode()
    check = _checksum_ok(p, body)
    with cluster.lock:
        st, filename, volname = _target_file(ctx, p)
    size = random.Random(p["filename"]).randint(3, 900) * MiB
    tmp = f"/var/tmp/pveupload-{uuid.uuid4().hex[:32]}"
    dest = volume_path(st, volname)

    def worker(t):
        t.log(f"starting file import from: {tmp}")
        if check:
            algo, expected = check
            t.log(f"calculating checksum of uploaded file '{tmp}'...")
            actual = hashlib.new(algo, body).hexdigest()
            if actual != expected:
                raise TaskError(f"checksum mismatch: got '{actual}' != expect '{expected}'")
            t.log("checksum verified")
        t.log(f"target node: {node}")
        t.log(f"target file: {dest}")
        t.log(f"file size is: {size}")
        t.log(f"command: cp -- {tmp} {dest}")
        t.sleep(max(0.5, size / (500 * MiB)))
        _store_file(cluster, st, node, volname, p["content"], size)
        t.log("finished file import successfully")

    return cluster.tasks.start(node=node, type="imgcopy", id="", user=ctx.authid, worker=worker)


def _store_file(cluster: Cluster, st: Storage, node: str, volname: str, content: str, size: int) -> None:
    holder = None if st.shared else node
    with cluster.lock:
        volid = f"{st.storage}:{volname}"
        fmt = "iso" if content == "iso" else ("tzst" if volname.endswith(".zst") else "txz" if volname.endswith(".xz") else "tgz") \
            if content == "vztmpl" else volname.rsplit(".", 1)[-1]
        cluster.remove_volume(volid, holder)  # PVE overwrites an existing file
        cluster.add_volume(Volume(volid=volid, storage=st.storage, content=content, size=size, format=fmt, node=holder))


def _human(n: float) -> str:
    for unit, div in (("G", GiB), ("M", MiB), ("K", 1024)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{int(n)}"


@api.post("/nodes/{node}/storage/{storage}/download-url", params={
    **_UPLOAD_PARAMS, "url": P.string(optional=False, pattern=r"https?://.*"), "verify-certificates": P.boolean(),
    "compression": P.string()}, proxyto="node")
def download_url(ctx, p):
    ctx.check(f"/storage/{p['storage']}", "Datastore.AllocateTemplate")
    if not (ctx.has("/", "Sys.Audit") and ctx.has("/", "Sys.Modify")) and not ctx.has(f"/nodes/{p['node']}", "Sys.AccessNetwork"):
        raise ApiError(403, f"Permission check failed (/nodes/{p['node']}, Sys.AccessNetwork)")
    cluster, node, url = ctx.cluster, p["node"], p["url"]
    check = _checksum_ok(p, None)
    if p.get("compression") and p["compression"] not in ("gz", "lzo", "zst", "bz2"):
        raise ApiError(400, "Parameter verification failed.",
                       {"compression": f"value '{p['compression']}' does not have a value in the enumeration 'gz, lzo, zst, bz2'"})
    with cluster.lock:
        st, filename, volname = _target_file(ctx, p)
    # Deterministic "remote file": size from the URL, content = the URL's bytes repeated.
    rnd = random.Random(url)
    size = rnd.randint(40, 900) * MiB if p["content"] == "iso" else rnd.randint(3, 200) * MiB
    payload = url.encode()
    dest = volume_path(st, volname)
    tmp = dest.rsplit("/", 1)[0] + f"/{filename}.tmp.{rnd.randint(1000, 99999)}"

    def worker(t):
        t.log(f"downloading {url} to {dest}")
        t.log(f"--{time.strftime('%Y-%m-%d %H:%M:%S')}--  {url}")
        host = re.sub(r"^https?://([^/:]+).*$", r"\1", url)
        if host.endswith(".invalid") or host == "unreachable.example":
            raise TaskError(f"download failed: wget: unable to resolve host address '{host}'")
        t.log(f"Resolving {host} ({host})... 203.0.113.{rnd.randint(1, 254)}")
        t.log(f"Connecting to {host}|203.0.113.10|:443... connected.")
        t.log("HTTP request sent, awaiting response... 200 OK")
        t.log(f"Length: {size} ({_human(size)}) [application/octet-stream]")
        t.log(f"Saving to: '{tmp}'")
        speed = 110 * MiB
        steps = 10
        for i in range(1, steps + 1):
            t.sleep(size / speed / steps)
            done = size * i // steps
            t.log(f"{done // 1024:>8}K {'.' * 10 * i:<100} {i * 100 // steps:>3}% {_human(speed)} {max(0, (steps - i)) * 1}s")
        t.log(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({_human(speed)}/s) - '{tmp}' saved [{size}/{size}]")
        if check:
            algo, expected = check
            t.log(f"calculating checksum of '{tmp}'...")
            actual = hashlib.new(algo, payload).hexdigest()
            if actual != expected:
                t.log(f"removing temporary file '{tmp}'")
                raise TaskError(f"checksum mismatch: got '{actual}' != expect '{expected}'")
            t.log("checksum verified")
        t.log(f"rename '{tmp}' to '{dest}'")
        _store_file(cluster, st, node, volname, p["content"], size)

    return cluster.tasks.start(node=node, type="download", id=st.storage, user=ctx.authid, worker=worker)


def fake_download_checksum(url: str, algorithm: str) -> str:
    """The checksum download-url expects for `url` (the simulated file's bytes are the URL)."""
    return hashlib.new(algorithm, url.encode()).hexdigest()
