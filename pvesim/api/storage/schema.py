"""Storage types, the content each type supports, and the option declarations of /storage."""

from __future__ import annotations


from ...params import P, PropString


TYPES = ["btrfs", "cephfs", "cifs", "dir", "esxi", "iscsi", "iscsidirect", "lvm", "lvmthin", "nfs", "pbs", "rbd",
         "zfs", "zfspool"]
# What each plugin can hold, and what it holds when `content` is not given (pve-storage plugins).
SUPPORTED_CONTENT = {
    "dir": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "nfs": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "cifs": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "btrfs": {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "import", "none"},
    "cephfs": {"vztmpl", "iso", "backup", "snippets", "import"},
    "rbd": {"images", "rootdir"}, "zfspool": {"images", "rootdir"}, "lvmthin": {"images", "rootdir"},
    "lvm": {"images", "rootdir", "none"}, "zfs": {"images"}, "iscsi": {"images", "none"},
    "iscsidirect": {"images", "none"}, "pbs": {"backup"}, "esxi": {"import"},
}
DEFAULT_CONTENT = {
    "dir": ["images", "rootdir"], "btrfs": ["images", "rootdir"], "nfs": ["images"], "cifs": ["images"],
    "cephfs": ["backup"], "rbd": ["images"], "zfspool": ["images", "rootdir"], "lvmthin": ["images", "rootdir"],
    "lvm": ["images"], "zfs": ["images"], "iscsi": ["images"], "iscsidirect": ["images"], "pbs": ["backup"],
    "esxi": ["import"],
}
SHARED_TYPES = {"nfs", "cifs", "cephfs", "rbd", "pbs", "iscsi", "iscsidirect", "zfs", "esxi"}
# Options a storage type cannot be created without (SectionConfig: "missing value for required option").
REQUIRED = {"dir": ["path"], "btrfs": ["path"], "nfs": ["server", "export"], "cifs": ["server", "share"],
            "zfspool": ["pool"], "lvm": ["vgname"], "lvmthin": ["vgname", "thinpool"], "zfs": ["portal", "target",
            "pool", "iscsiprovider"], "iscsi": ["portal", "target"], "iscsidirect": ["portal", "target"],
            "pbs": ["server", "datastore"], "esxi": ["server", "username", "password"]}
FILE_BASED = {"dir", "nfs", "cifs", "cephfs", "btrfs"}
CEPH_FSID = "8d2b7f42-4c1e-4e6b-9a61-2f3d5e7c9b10"

PRUNE_KEYS = ["keep-all", "keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"]
PRUNE_PROP = PropString({k: (P.boolean() if k == "keep-all" else P.integer(minimum=1)) for k in PRUNE_KEYS})

_COMMON_OPTS = {
    "blocksize": P.string(), "bwlimit": P.string(), "comstar_hg": P.string(), "comstar_tg": P.string(),
    "content": P.string(format="pve-storage-content-list"), "content-dirs": P.string(),
    "create-base-path": P.boolean(), "create-subdirs": P.boolean(), "data-pool": P.string(),
    "disable": P.boolean(), "domain": P.string(max_length=256), "encryption-key": P.string(),
    "fingerprint": P.string(pattern=r"([A-Fa-f0-9]{2}:){31}[A-Fa-f0-9]{2}"),
    "format": P.enum(["raw", "qcow2", "subvol", "vmdk"]), "fs-name": P.string(format="pve-configid"),
    "fuse": P.boolean(), "is_mountpoint": P.string(), "keyring": P.string(), "krbd": P.boolean(),
    "lio_tpg": P.string(), "master-pubkey": P.string(), "max-protected-backups": P.integer(minimum=-1),
    "mkdir": P.boolean(), "monhost": P.string(), "mountpoint": P.string(), "namespace": P.string(),
    "nocow": P.boolean(), "nodes": P.string(format="pve-node-list"), "nowritecache": P.boolean(),
    "options": P.string(), "password": P.string(max_length=256), "pool": P.string(),
    "port": P.integer(minimum=1, maximum=65535), "preallocation": P.enum(["off", "metadata", "falloc", "full"]),
    "prune-backups": P.string(prop=PRUNE_PROP), "saferemove": P.boolean(),
    "saferemove-stepsize": P.enum(["1", "2", "4", "8", "16", "32"]), "saferemove_throughput": P.string(),
    "server": P.string(), "shared": P.boolean(), "skip-cert-verification": P.boolean(),
    "smbversion": P.enum(["default", "2.0", "2.1", "3", "3.0", "3.11"]), "snapshot-as-volume-chain": P.boolean(),
    "sparse": P.boolean(), "subdir": P.string(), "tagged_only": P.boolean(), "username": P.string(),
    "zfs-base-path": P.string(),
}
_CREATE_ONLY = {
    "storage": P.storage(optional=False), "type": P.enum(TYPES, optional=False), "authsupported": P.string(),
    "base": P.string(), "export": P.string(), "iscsiprovider": P.string(), "path": P.string(),
    "portal": P.string(), "share": P.string(), "target": P.string(), "thinpool": P.string(), "vgname": P.string(),
    "datastore": P.string(),
}
# The schema types saferemove-stepsize as an integer with an enum.
_COMMON_OPTS["saferemove-stepsize"] = P.integer(enum=["1", "2", "4", "8", "16", "32"])
CREATE_PARAMS = {**_COMMON_OPTS, **_CREATE_ONLY}
UPDATE_PARAMS = {**_COMMON_OPTS, "storage": P.storage(optional=False), "delete": P.string(max_length=4096),
                 "digest": P.digest()}
_CONFIG_FIELDS = set(CREATE_PARAMS) - {"storage", "type", "content", "nodes", "disable", "shared"}
