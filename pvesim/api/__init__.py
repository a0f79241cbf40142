"""Endpoint modules. Importing this package registers every route on `pvesim.router.api`.

Each module may define `install(cluster, scenario)`, called once per cluster build (and on
reset) to load its part of the scenario and register hooks or background actors.
"""

from importlib import import_module

MODULES = [
    "version", "access", "cluster", "tasks", "nodes", "storage", "guests", "qemu", "lxc",
    "backup", "migrate", "hardware", "mapping", "pools", "ha", "replication", "firewall", "network", "metrics", "console",
]

_loaded = [import_module(f"{__name__}.{name}") for name in MODULES]


def install(cluster, scenario) -> None:
    for module in _loaded:
        hook = getattr(module, "install", None)
        if hook is not None:
            hook(cluster, scenario)
