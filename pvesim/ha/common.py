"""Timings, resource defaults and the small helpers every part of the HA stack shares."""

from __future__ import annotations

import hashlib
import json
import secrets


ROUND = 10.0  # CRM/LRM loop period
FENCE_DELAY = 60.0  # a node offline this long gets fenced
LOCK_LIFETIME = 120.0  # pmxcfs lock lifetime: a dead node's agent lock is free after this
WATCHDOG_TIMEOUT = 60.0  # an LRM without quorum resets its node after this

RESOURCE_DEFAULTS = {"state": "started", "failback": 1, "max_restart": 1, "max_relocate": 1}
RESOURCE_KEYS = ("state", "max_restart", "max_relocate", "failback", "comment", "group")
# CRM states whose service belongs to (and must be fenced with) its node
FENCEABLE = ("started", "request_start", "request_stop", "stopped", "migrate", "relocate")
ACTIVE_STATES = ("started", "request_start", "request_stop", "migrate", "relocate", "fence", "recovery")


def config_digest(data) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=sorted).encode()).hexdigest()


def _uid() -> str:
    return secrets.token_urlsafe(16)[:22]
