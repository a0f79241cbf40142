"""python -m pvesim: serve a simulated Proxmox VE 9.1 cluster over HTTPS."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import uuid
from pathlib import Path

from . import scenario as scenario_mod
from . import sshd
from .admin import admin
from .server import PveServer
from .sparse import SchemaUnavailable
from .tls import fingerprint, server_context

EPILOG = """\
fault injection (admin API, header 'X-PVESim-Admin: <admin secret>'):
  POST /pvesim/nodes/<node>/power        state=off|on     power a node off or on
  POST /pvesim/nodes/<node>/partition    partitioned=1|0  cut a node off from corosync
  POST /pvesim/faults/task-failure       type=qmstart message='...' [count=N]
  POST /pvesim/faults/latency            seconds=0.5 [path=/cluster/resources]
  POST /pvesim/faults/clear | /pvesim/time-scale scale=X | /pvesim/reset | /pvesim/local-node node=X
  POST /pvesim/sparse                     on=1|0           only what the PVE schema promises (see --sparse)
  GET  /pvesim/counters (DELETE to zero)   GET /pvesim/state
  POST /pvesim/ssh/authorized-keys       key='ssh-ed25519 AAAA...'  let a key log in to the nodes' SSH
  POST /pvesim/suricata/alert            vmid=100|node=pve1 signature='...' [src_ip, dest_port, ...]
  POST /pvesim/suricata/rotate           node=pve1 [truncate=1]   (see pvesim/sshd.py for all)
"""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m pvesim", description="A Proxmox VE 9.1 API simulator (HTTPS, /api2/json).",
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", metavar="FILE", help="scenario file (TOML or JSON); default: the 3-node demo")
    ap.add_argument("--scale", metavar="NODES,GUESTS", help="generate a large cluster instead, e.g. 50,10000")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8006, help="port (default 8006; 0 picks a free one)")
    ap.add_argument("--root-password", help="root@pam password (default: random, printed)")
    ap.add_argument("--api-token", metavar="USER@REALM!ID=SECRET",
                    help="a full-privilege API token (default: root@pam!pvesim=<random uuid>, printed)")
    ap.add_argument("--admin-secret", help="secret for the /pvesim admin API (default: random, printed)")
    ap.add_argument("--time-scale", type=float, default=1.0, help="speed-up of simulated time (10 = ten times faster)")
    ap.add_argument("--cert", help="PEM certificate (default: self-signed, generated at start)")
    ap.add_argument("--key", help="PEM private key for --cert")
    ap.add_argument("--ready-file", help="write the connection details as JSON to this file once serving")
    ap.add_argument("--sparse", action="store_true",
                    help="answer only with what the official PVE API schema marks as required, and 501 for "
                         "endpoints newer than PVE 8.4 (needs the schema, see --schema)")
    ap.add_argument("--schema", metavar="FILE",
                    help="the official PVE API schema (pve-api-schema.json) for --sparse; default: $PVESIM_SCHEMA, "
                         "else ../shared/pve-api-schema.json beside the repository")
    ap.add_argument("--ssh-port", type=int, default=0,
                    help="each node's SSH server (SFTP: /etc/pve/firewall, /var/log/suricata) listens on this "
                         "port plus the node's index; default 0: free ports, reported with the others")
    ap.add_argument("--no-ssh", action="store_true", help="start no SSH servers")
    ap.add_argument("--log-level", default="WARNING")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="pvesim %(levelname)s %(message)s")
    if args.scale:
        try:
            n_nodes, n_guests = (int(x) for x in args.scale.split(","))
        except ValueError:
            print("--scale takes NODES,GUESTS, e.g. 50,10000", file=sys.stderr)
            return 2
        data = scenario_mod.generate_scale(n_nodes, n_guests)
    else:
        try:
            data = scenario_mod.load_file(args.scenario)
        except (OSError, ValueError) as exc:
            print(f"cannot read scenario: {exc}", file=sys.stderr)
            return 2

    root_password = args.root_password or secrets.token_urlsafe(12)
    token = args.api_token or f"root@pam!pvesim={uuid.uuid4()}"
    full, sep, token_secret = token.rpartition("=")
    if not sep or "!" not in full:
        print("--api-token must look like USER@REALM!ID=SECRET", file=sys.stderr)
        return 2
    token_user, token_id = full.split("!", 1)
    admin_secret = args.admin_secret or secrets.token_urlsafe(16)

    def factory():
        cluster = scenario_mod.build(data, time_scale=args.time_scale)
        cluster.access.set_password("root@pam", root_password)
        if token_user not in cluster.access.users:
            cluster.access.set_password(token_user, secrets.token_urlsafe(12))
        cluster.access.add_token(token_user, token_id, token_secret, privsep=False, comment="pvesim full-privilege token")
        if token_user != "root@pam":
            from .access import Acl
            cluster.access.acl.append(Acl(path="/", ugid=token_user, type="user", roleid="Administrator"))
        return cluster

    ssl_ctx, cert_path = server_context(Path(args.cert) if args.cert else None, Path(args.key) if args.key else None)
    try:
        server = PveServer((args.host, args.port), factory, admin_secret, ssl_ctx, admin_registry=admin,
                           sparse=args.sparse, schema=args.schema)
    except SchemaUnavailable as exc:
        print(f"pvesim: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    info = {
        "url": f"https://{host}:{port}", "host": host, "port": port, "fingerprint": fingerprint(cert_path),
        "cert": str(cert_path), "root_password": root_password, "token_id": full, "token_secret": token_secret,
        "admin_secret": admin_secret, "cluster": server.cluster.name, "pid": os.getpid(),
        "sparse": server.sparse is not None,
    }
    if not args.no_ssh:
        server.ssh = sshd.SshService(server, args.host, args.ssh_port)
        info["ssh"] = server.ssh.start()
    print(f"pvesim: Proxmox VE 9.1 API simulator serving cluster '{info['cluster']}' ({len(server.cluster.nodes)} nodes, "
          f"{len(server.cluster.guests)} guests)")
    print(f"  URL:          {info['url']}/api2/json")
    print(f"  fingerprint:  {info['fingerprint']}")
    print(f"  root@pam:     {root_password}")
    print(f"  API token:    {full}={token_secret}")
    print(f"  admin secret: {admin_secret} (header X-PVESim-Admin, /pvesim/...)")
    print(f"  time scale:   {args.time_scale}x", flush=True)
    for node, listener in sorted(info.get("ssh", {}).items()):
        print(f"  ssh {node}:{' ' * max(1, 8 - len(node))}{listener['host']}:{listener['port']} "
              f"host key {listener['fingerprint']}", flush=True)
    if server.sparse is not None:
        print(f"  sparse:       only what {server.sparse.path} marks as required", flush=True)
    if args.ready_file:
        tmp = Path(args.ready_file + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(info, indent=2))
        tmp.chmod(0o600)
        tmp.replace(args.ready_file)

    stop = threading.Event()

    def shutdown(*_):
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        if getattr(server, "ssh", None) is not None:
            server.ssh.stop()
        server.cluster.stop()
        server.server_close()
        if args.ready_file:
            try:
                Path(args.ready_file).unlink()
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
