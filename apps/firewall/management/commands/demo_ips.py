"""`manage.py demo_ips --cluster demo --pvesim var/pvesim.json`: the demo cluster's SSH channel for
intrusion prevention, set up as an operator would on a real cluster, so the guests' IPS switch and
alerts work on first run.

The portal makes the channel's key pair; the public half goes into the nodes' authorized_keys
(pvesim's admin API stands in for ssh-copy-id); each node gets the address and port of its SSH
server and its host key pinned from what pvesim printed (not trusted on first use). Then every node
is logged in to once. Idempotent: an existing channel keeps its key; addresses and host keys are
updated (pvesim makes new ones at each start).
"""

from __future__ import annotations

import json
from pathlib import Path

import requests
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.firewall import ips
from apps.nodes.models import Cluster


class Command(BaseCommand):
    help = "Set up the demo cluster's SSH channel (IPS) to pvesim's nodes."

    def add_arguments(self, parser):
        parser.add_argument("--cluster", default="demo")
        parser.add_argument("--pvesim", required=True, help="pvesim's --ready-file")

    def handle(self, *args, **options):
        ready = json.loads(Path(options["pvesim"]).read_text())
        listeners = ready.get("ssh") or {}
        if not listeners:
            self.stdout.write("IPS: pvesim runs no SSH servers (--no-ssh); the SSH channel is not set up")
            return
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named '{options['cluster']}'")
        operator = get_user_model().objects.get(username="operator")
        channel = ips.channel_of(cluster) or ips.channel_create(user=operator, cluster=cluster,
                                                                 trust_on_first_use=False)
        response = requests.post(f"{ready['url']}/pvesim/ssh/authorized-keys", json={"key": channel.public_key},
                                 headers={"X-PVESim-Admin": ready["admin_secret"]}, verify=ready["cert"], timeout=30)
        if response.status_code != 200:
            raise CommandError(f"pvesim refused the channel's key: {response.status_code} {response.text[:300]}")
        nodes = set(cluster.nodes.values_list("name", flat=True))
        for node, listener in sorted(listeners.items()):
            if node in nodes:
                ips.host_update(user=operator, channel=channel, node=node, address=listener["host"],
                                port=listener["port"], host_key=listener["host_key"])
        results = ips.channel_test(user=operator, channel=channel)
        failed = {node: why for node, why in results.items() if why != "ok"}
        if failed:
            raise CommandError(f"IPS: the SSH channel cannot log in to {failed}")
        self.stdout.write(f"IPS: SSH channel to {len(results)} nodes, host keys pinned")
