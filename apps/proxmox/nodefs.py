"""Files on a Proxmox node, over SSH (asyncssh, SFTP): what Proxmox has no API for.

Proxmox's API has no call for Suricata: a guest's `ips` and `ips_queues` exist only in its firewall
file on the cluster file system, `/etc/pve/firewall/<vmid>.fw` (section `[OPTIONS]`, lines
`ips: 1`, `ips_queues: 0` or `0:3`), and Suricata writes its alerts to each node's
`/var/log/suricata/eve.json`, one JSON event per line. This module reaches both through an
operator-configured SSH channel:

- a dedicated key pair (`generate_key`), its public half installed by the operator for root
  on the nodes (on a cluster, /etc/pve/priv/authorized_keys serves every node);
- host keys pinned: an `Endpoint` carries the node's public host key, and asyncssh refuses the
  connection before authenticating when the node presents another one (`HostKeyMismatch`, with
  both fingerprints); an endpoint without a pinned key connects once and reports the key it saw
  (`Session.presented_host_key`), for the caller to record (trust on first use);
- guest firewall files edited line by line: `with_options` changes only the `[OPTIONS]` lines
  it is given and keeps every other byte; `Session.write_atomic` writes a temp file in the same
  folder and renames it over the file (as pve-firewall's own writes do), refusing with
  `FileChanged` when the file is no longer what the caller read;
- the EVE log read incrementally: `read_eve` resumes from an `EveCursor` (byte offset and a
  fingerprint of the file's first line, which tells a rotated or truncated file from a grown one;
  SFTP has no inode numbers), finishes the rotated `eve.json.1` first, and returns whole lines
  only; `parse_alert` turns an `alert` event into plain typed data.

Each `Session` runs its own event loop in a helper thread, so it is called from plain sync code
(views, Celery tasks) and from threads that already run a loop alike. Errors are ProxmoxError
subclasses: SshUnreachable, SshAuthError, HostKeyMismatch, FileChanged, SshError.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import posixpath
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Required, TypedDict

from .errors import ProxmoxError

# asyncssh logs every connection and channel at INFO: keep its warnings only.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

GUEST_FIREWALL_DIR = "/etc/pve/firewall"
EVE_LOG = "/var/log/suricata/eve.json"
EVE_ROTATED = EVE_LOG + ".1"
DEFAULT_PORT = 22
DEFAULT_USER = "root"
TIMEOUT = 8.0  # seconds per connect and per call: a page waits this long for a silent node
EVE_CHUNK = 4 * 1024 * 1024  # bytes read per call at most
HEAD_BYTES = 4096  # how much of the first line fingerprints a log file
IPS_QUEUES_RE = re.compile(r"^(\d{1,5})(?::(\d{1,5}))?$")
_OPTION_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:")
_SECTION = re.compile(r"^\s*\[[^\]]*\]\s*(?:#.*)?$")
_OPTIONS_HEADER = re.compile(r"^\s*\[options\]\s*$", re.IGNORECASE)


# -- errors ---------------------------------------------------------------------------------------

class SshError(ProxmoxError):
    """An SSH or SFTP failure on a node; `message` says what, in the server's words when it gave any."""


class SshUnreachable(SshError):
    """No connection: refused, timed out, name not found, or dropped before logging in."""


class SshAuthError(SshError):
    """The node did not accept the portal's key (not installed in root's authorized_keys)."""


class HostKeyMismatch(SshError):
    """The node presented another host key than the pinned one: refused before logging in."""

    def __init__(self, message: str, *, expected: str, actual: str | None):
        self.expected, self.actual = expected, actual
        super().__init__(message)


class FileChanged(SshError):
    """The file is no longer what the caller read: someone else wrote it meanwhile."""


# -- keys -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyPair:
    private: str  # OpenSSH private key (PEM-like text): store it encrypted, never show it
    public: str  # `ssh-ed25519 AAAA... comment`: what the operator installs
    fingerprint: str  # SHA256:...


def generate_key(comment: str) -> KeyPair:
    """A new Ed25519 key pair for one cluster's channel."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return KeyPair(private=key.export_private_key("openssh").decode(),
                   public=key.export_public_key("openssh").decode().strip(),
                   fingerprint=key.get_fingerprint("sha256"))


def normalize_host_key(text: str) -> str:
    """`type base64` of a host key pasted as an authorized_keys or known_hosts line, or as the
    output of ssh-keyscan (`host type base64 [comment]`); ValueError when it is none of them."""
    import asyncssh

    for raw in (text or "").strip().splitlines():
        words = raw.strip().split()
        if not words or words[0].startswith("#"):
            continue
        for start in range(min(len(words), 3)):
            candidate = " ".join(words[start:start + 2])
            try:
                key = asyncssh.import_public_key(candidate)
            except (asyncssh.KeyImportError, ValueError, TypeError):
                continue
            return key.export_public_key("openssh").decode().split()[0] + " " + candidate.split()[1]
    raise ValueError("not an SSH public host key: paste a line like 'ssh-ed25519 AAAA...' "
                     "(from /etc/ssh/ssh_host_ed25519_key.pub or ssh-keyscan)")


def fingerprint(public_key: str) -> str:
    """SHA256:... of an OpenSSH public key line, as ssh-keygen -l shows it."""
    words = (public_key or "").split()
    if len(words) < 2:
        raise ValueError("not an OpenSSH public key")
    digest = hashlib.sha256(base64.b64decode(words[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


# -- the connection -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """How to reach one node: its address, the portal's private key, and its pinned host key
    (empty: accept what it presents and report it in `Session.presented_host_key`)."""

    node: str
    host: str
    private_key: str = field(repr=False)
    host_key: str = ""
    port: int = DEFAULT_PORT
    username: str = DEFAULT_USER
    timeout: float = TIMEOUT

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port} (node {self.node})"


class _Loop:
    """An event loop in a daemon thread; `run(coro)` waits for its result from any thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nodefs-ssh", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float):
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop)
        try:
            return future.result(timeout + 5)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


def _translate(exc: BaseException, endpoint: Endpoint) -> SshError:
    import asyncssh

    where = endpoint.where
    if isinstance(exc, SshError):
        return exc
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyMismatch(f"{where} presented another host key than the one pinned for it "
                               f"({fingerprint(endpoint.host_key)}); refused before logging in",
                               expected=endpoint.host_key, actual=None)
    if isinstance(exc, asyncssh.PermissionDenied):
        return SshAuthError(f"{where} refused the portal's key: install the channel's public key for "
                            f"{endpoint.username} on the node ({exc.reason or exc})")
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return SshError(f"no such file on {endpoint.node}: {exc.reason}")
    if isinstance(exc, asyncssh.SFTPError):
        return SshError(f"SFTP on {endpoint.node} failed: {exc.reason}")
    if isinstance(exc, (asyncssh.ConnectionLost, asyncssh.DisconnectError)):
        return SshUnreachable(f"{where} closed the connection: {getattr(exc, 'reason', '') or exc}")
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return SshUnreachable(f"{where} did not answer within {endpoint.timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return SshUnreachable(f"{where} refused the connection (is sshd running?)")
    if isinstance(exc, OSError):
        return SshUnreachable(f"cannot connect to {where}: {exc.strerror or exc}")
    return SshError(f"SSH to {where} failed: {exc}")


class Session:
    """One SSH connection with its SFTP channel: `with open_session(endpoint) as s: s.read(...)`."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.presented_host_key = ""
        self._loop = _Loop()
        self._conn = self._sftp = None

    def _call(self, coro):
        try:
            return self._loop.run(coro, self.endpoint.timeout)
        except BaseException as exc:
            raise _translate(exc, self.endpoint) from exc

    async def _connect(self):
        import asyncssh

        ep = self.endpoint
        key = asyncssh.import_private_key(ep.private_key)
        known = ([asyncssh.import_public_key(ep.host_key)], [], []) if ep.host_key else None
        self._conn = await asyncssh.connect(
            ep.host, ep.port, username=ep.username, client_keys=[key], known_hosts=known, agent_path=None,
            config=None, preferred_auth="publickey", connect_timeout=ep.timeout, login_timeout=ep.timeout,
            keepalive_interval=0)
        presented = self._conn.get_server_host_key()
        if presented is not None:
            self.presented_host_key = " ".join(presented.export_public_key("openssh").decode().split()[:2])
        self._sftp = await self._conn.start_sftp_client()

    def open(self) -> "Session":
        try:
            self._call(self._connect())
        except HostKeyMismatch as exc:
            exc.actual = _scan(self.endpoint)
            if exc.actual:
                exc.message = exc.args[0] + f"; it presented {fingerprint(exc.actual)}"
                exc.args = (exc.message,)
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        async def shut():
            if self._sftp is not None:
                self._sftp.exit()
            if self._conn is not None:
                self._conn.close()
                await self._conn.wait_closed()
        try:
            if self._conn is not None:
                self._loop.run(shut(), 5)
        except BaseException:  # closing anyway
            pass
        finally:
            self._conn = self._sftp = None
            self._loop.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- files --------------------------------------------------------------------------------
    def read(self, path: str) -> bytes | None:
        """The whole file, None when it does not exist."""
        import asyncssh

        async def go():
            try:
                async with self._sftp.open(path, "rb") as fh:
                    return await fh.read()
            except asyncssh.SFTPNoSuchFile:
                return None
        return self._call(go())

    def size(self, path: str) -> int | None:
        import asyncssh

        async def go():
            try:
                return (await self._sftp.stat(path)).size
            except asyncssh.SFTPNoSuchFile:
                return None
        return self._call(go())

    def read_range(self, path: str, offset: int, length: int) -> bytes | None:
        import asyncssh

        async def go():
            try:
                async with self._sftp.open(path, "rb") as fh:
                    await fh.seek(offset)
                    return await fh.read(length)
            except asyncssh.SFTPNoSuchFile:
                return None
        return self._call(go())

    def write_atomic(self, path: str, data: bytes, *, expected: bytes | None) -> None:
        """Replace `path` with `data` if it still holds `expected` (None: if it still does not
        exist): a temp file in the same folder, renamed over it. FileChanged otherwise."""
        import asyncssh

        temp = f"{path}.tmp.{secrets.token_hex(6)}"

        async def same() -> bool:
            try:
                async with self._sftp.open(path, "rb") as fh:
                    current = await fh.read()
            except asyncssh.SFTPNoSuchFile:
                current = None
            return current == expected

        async def go():
            if not await same():
                raise FileChanged(f"{path} on {self.endpoint.node} changed since it was read; read it again")
            async with self._sftp.open(temp, "wb") as fh:
                await fh.write(data)
            try:
                if not await same():  # the last look, right before the rename
                    raise FileChanged(f"{path} on {self.endpoint.node} changed while it was being written; "
                                      f"nothing was changed")
                await self._sftp.posix_rename(temp, path)
            except BaseException:
                try:
                    await self._sftp.remove(temp)
                except asyncssh.SFTPError:
                    pass
                raise
        self._call(go())


def open_session(endpoint: Endpoint) -> Session:
    """Connect and log in (SshUnreachable, SshAuthError, HostKeyMismatch)."""
    return Session(endpoint).open()


def _scan(endpoint: Endpoint) -> str | None:
    """The host key the node presents now (no login), None when it cannot be had."""
    import asyncssh

    loop = _Loop()
    try:
        key = loop.run(asyncssh.get_server_host_key(endpoint.host, endpoint.port, config=None), endpoint.timeout)
    except BaseException:
        return None
    finally:
        loop.close()
    return None if key is None else " ".join(key.export_public_key("openssh").decode().split()[:2])


def scan_host_key(host: str, port: int = DEFAULT_PORT, *, timeout: float = TIMEOUT) -> str:
    """The host key a node presents (`type base64`), for an operator to compare and pin."""
    found = _scan(Endpoint(node=host, host=host, port=port, private_key="", timeout=timeout))
    if found is None:
        raise SshUnreachable(f"could not read the host key of {host}:{port}")
    return found


def check(endpoint: Endpoint) -> str:
    """Log in and look at the firewall folder: the host key presented (raises on any failure)."""
    with open_session(endpoint) as session:
        session.size(GUEST_FIREWALL_DIR)
        return session.presented_host_key


# -- a guest's firewall file ----------------------------------------------------------------------

def guest_firewall_path(vmid: int) -> str:
    return posixpath.join(GUEST_FIREWALL_DIR, f"{int(vmid)}.fw")


@dataclass(frozen=True)
class FirewallFile:
    vmid: int
    text: str  # "" when the file does not exist
    exists: bool

    @property
    def options(self) -> dict[str, str]:
        return parse_options(self.text)

    @property
    def digest(self) -> str:
        """SHA-256 of the content ("absent" without a file): send it back with a change to refuse
        the change if the file moved on."""
        return hashlib.sha256(self.text.encode()).hexdigest() if self.exists else "absent"

    @property
    def ips(self) -> bool:
        return self.options.get("ips") == "1"

    @property
    def ips_queues(self) -> str:
        return self.options.get("ips_queues", "")


def _options_span(lines: list[str]) -> tuple[int, int] | None:
    """(index of the [OPTIONS] header, index after its last line), None without the section."""
    for start, line in enumerate(lines):
        if _OPTIONS_HEADER.match(line):
            end = start + 1
            while end < len(lines) and not _SECTION.match(lines[end]):
                end += 1
            return start, end
    return None


def parse_options(text: str) -> dict[str, str]:
    """The `[OPTIONS]` section's `key: value` pairs (keys lower-cased, values as written)."""
    lines = text.splitlines()
    span = _options_span(lines)
    out: dict[str, str] = {}
    if span is None:
        return out
    for line in lines[span[0] + 1:span[1]]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _OPTION_LINE.match(stripped)
        if match:
            out[match.group(1).lower()] = stripped[match.end():].strip()
    return out


def with_options(text: str, changes: dict[str, str | None]) -> str:
    """`text` with the `[OPTIONS]` lines of `changes` set (None: removed); every other line, the
    other options, comments and sections stay as they were. Adds the section on top when missing."""
    for key, value in changes.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", key) or (value is not None and ("\n" in value or "\r" in value)):
            raise ValueError(f"not an option line: {key}: {value!r}")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    span = _options_span(lines)
    pending = {k: v for k, v in changes.items() if v is not None}
    if span is None:
        if not pending:
            return text
        block = ["[OPTIONS]\n", "\n", *(f"{k}: {v}\n" for k, v in pending.items()), "\n"]
        return "".join(block + lines)
    start, end = span
    body = lines[start + 1:end]
    kept: list[str] = []
    for line in body:
        match = _OPTION_LINE.match(line.strip()) if not line.strip().startswith("#") else None
        key = match.group(1).lower() if match else None
        if key in changes:
            if key in pending:
                kept.append(f"{key}: {pending.pop(key)}\n")
            continue  # removed, or a duplicate of a line already set
        kept.append(line)
    if pending:
        last = max((i for i, line in enumerate(kept) if line.strip()), default=-1)
        if last == -1:
            kept = ["\n", *kept]  # as Proxmox writes it: a blank line under the header
            last = 0
        kept[last + 1:last + 1] = [f"{k}: {v}\n" for k, v in pending.items()]
    return "".join(lines[:start + 1] + kept + lines[end:])


def check_ips_queues(value: str) -> str:
    """`N` or `N:M` (N <= M, NFQUEUE numbers 0-65535); ValueError otherwise."""
    match = IPS_QUEUES_RE.match((value or "").strip())
    if not match:
        raise ValueError("a queue number (0) or a range (0:3)")
    low, high = int(match.group(1)), int(match.group(2) if match.group(2) is not None else match.group(1))
    if low > 65535 or high > 65535:
        raise ValueError("queue numbers go up to 65535")
    if low > high:
        raise ValueError(f"backwards range: did you mean {high}:{low}?")
    return value.strip()


def read_guest_firewall(session: Session, vmid: int) -> FirewallFile:
    data = session.read(guest_firewall_path(vmid))
    return FirewallFile(vmid=int(vmid), text="" if data is None else data.decode("utf-8", "replace"),
                        exists=data is not None)


def set_guest_options(session: Session, vmid: int, changes: dict[str, str | None], *,
                      expected_digest: str | None = None) -> tuple[FirewallFile, FirewallFile]:
    """Change the guest's `[OPTIONS]` lines: (before, after). FileChanged when `expected_digest`
    (FirewallFile.digest as the caller saw it) no longer matches, or a write came in between."""
    before = read_guest_firewall(session, vmid)
    if expected_digest is not None and expected_digest != before.digest:
        raise FileChanged(f"{guest_firewall_path(vmid)} changed since it was shown; reload and try again")
    new_text = with_options(before.text, changes)
    if new_text == before.text:
        return before, before
    session.write_atomic(guest_firewall_path(vmid), new_text.encode(),
                         expected=before.text.encode() if before.exists else None)
    return before, read_guest_firewall(session, vmid)


def set_guest_ips(session: Session, vmid: int, *, enabled: bool, queues: str | None = None,
                  expected_digest: str | None = None) -> tuple[FirewallFile, FirewallFile]:
    """Suricata on (`ips: 1`) or off (`ips: 0`) for the guest; `queues` sets ips_queues ("" removes
    it, None leaves it)."""
    changes: dict[str, str | None] = {"ips": "1" if enabled else "0"}
    if queues is not None:
        changes["ips_queues"] = check_ips_queues(queues) if queues else None
    return set_guest_options(session, vmid, changes, expected_digest=expected_digest)


# -- Suricata's EVE log ---------------------------------------------------------------------------

@dataclass(frozen=True)
class EveCursor:
    """Where reading stopped: the byte after the last whole line read, and the SHA-256 of the
    file's first line (up to HEAD_BYTES) then, which changes when the file is a new one."""

    offset: int = 0
    head: str = ""


@dataclass
class EveRead:
    lines: list[str]
    cursor: EveCursor
    rotated: bool = False  # the file was replaced (the rest of the old one was read first)
    truncated: bool = False  # the file shrank under the offset (emptied in place): read from the start
    more: bool = False  # there is more to read than this call took
    skipped: int = 0  # bytes of an over-long line dropped


def _head_of(data: bytes) -> str:
    """Fingerprint of a file from its first bytes; "" until its first line is complete."""
    end = data.find(b"\n")
    if end < 0:
        return "" if len(data) < HEAD_BYTES else hashlib.sha256(data[:HEAD_BYTES]).hexdigest()
    return hashlib.sha256(data[:min(end + 1, HEAD_BYTES)]).hexdigest()


def _whole_lines(chunk: bytes, full: bool) -> tuple[list[str], int, int]:
    """(lines, bytes consumed, bytes skipped) of a chunk: up to its last newline; a chunk of
    EVE_CHUNK bytes without one is one over-long line, skipped."""
    end = chunk.rfind(b"\n")
    if end < 0:
        return ([], len(chunk), len(chunk)) if full else ([], 0, 0)
    lines = [line.decode("utf-8", "replace") for line in chunk[:end].split(b"\n")]
    return [line for line in lines if line.strip()], end + 1, 0


def read_eve(session: Session, cursor: EveCursor, *, path: str = EVE_LOG, rotated_path: str = EVE_ROTATED,
             max_bytes: int = EVE_CHUNK) -> EveRead:
    """The whole lines written to the node's EVE log since `cursor`, and the cursor to give next."""
    size = session.size(path)
    if size is None:  # between a rotation's rename and the new file: nothing to read yet
        return EveRead([], cursor)
    head_now = _head_of(session.read_range(path, 0, min(size, HEAD_BYTES)) or b"") if size else ""
    result = EveRead([], cursor)
    offset = cursor.offset
    if cursor.offset and (size < cursor.offset or (cursor.head and head_now and head_now != cursor.head)):
        if cursor.head and head_now != cursor.head:
            result.rotated = True
            old_size = session.size(rotated_path)
            if old_size is not None and old_size > cursor.offset and \
                    _head_of(session.read_range(rotated_path, 0, min(old_size, HEAD_BYTES)) or b"") == cursor.head:
                rest = session.read_range(rotated_path, cursor.offset, min(old_size - cursor.offset, max_bytes)) or b""
                result.lines, _, result.skipped = _whole_lines(rest + (b"" if rest.endswith(b"\n") else b"\n"), False)
        else:
            result.truncated = True
        offset = 0
    if size <= offset:
        result.cursor = EveCursor(offset=offset, head=head_now if offset else "")
        return result
    take = min(size - offset, max_bytes)
    chunk = session.read_range(path, offset, take) or b""
    lines, consumed, skipped = _whole_lines(chunk, len(chunk) >= max_bytes)
    result.lines += lines
    result.skipped += skipped
    new_offset = offset + consumed
    result.cursor = EveCursor(offset=new_offset, head=head_now if new_offset else "")
    result.more = new_offset < size
    return result


class Alert(TypedDict, total=False):
    """One Suricata `alert` event (EVE JSON): the tuple, the rule that matched, and what was done."""

    timestamp: Required[datetime]
    signature: Required[str]
    signature_id: int
    gid: int
    rev: int
    category: str
    severity: int  # 1 (high) .. 4
    action: str  # allowed | blocked
    src_ip: str
    src_port: int
    dest_ip: str
    dest_port: int
    proto: str
    src_mac: str
    dest_mac: str
    flow_id: int
    in_iface: str
    app_proto: str


def parse_event(line: str) -> dict[str, Any] | None:
    """One EVE line as JSON, None when it is not a JSON object (a broken or partial line)."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def parse_timestamp(text: str) -> datetime | None:
    """Suricata's `2017-04-07T22:24:37.251547+0100`."""
    try:
        stamp = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        match = re.fullmatch(r"(.+)([+-]\d{2})(\d{2})", text or "")
        if not match:
            return None
        try:
            stamp = datetime.fromisoformat(f"{match.group(1)}{match.group(2)}:{match.group(3)}")
        except ValueError:
            return None
    return stamp if stamp.tzinfo is not None else None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_alert(event: dict[str, Any]) -> Alert | None:
    """An `alert` event as Alert; None for other event types or one without a signature or time."""
    if event.get("event_type") != "alert" or not isinstance(event.get("alert"), dict):
        return None
    rule = event["alert"]
    stamp = parse_timestamp(str(event.get("timestamp", "")))
    if stamp is None or not rule.get("signature"):
        return None
    out: Alert = {"timestamp": stamp, "signature": str(rule["signature"])[:512]}
    for key in ("signature_id", "gid", "rev", "severity"):
        if _int(rule.get(key)) is not None:
            out[key] = _int(rule[key])
    for key in ("category", "action"):
        if rule.get(key):
            out[key] = str(rule[key])[:256]
    for key in ("src_ip", "dest_ip", "proto", "in_iface", "app_proto"):
        if event.get(key):
            out[key] = str(event[key])[:64]
    for key in ("src_port", "dest_port", "flow_id"):
        if _int(event.get(key)) is not None:
            out[key] = _int(event[key])
    ether = event.get("ether") if isinstance(event.get("ether"), dict) else {}
    for key in ("src_mac", "dest_mac"):
        if isinstance(ether.get(key), str):
            out[key] = ether[key].lower()[:17]
    return out
