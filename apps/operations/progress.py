"""Progress from Proxmox task log lines: the parsers and the ETA live in the gateway
(apps.proxmox.tasklog, the one place that reads Proxmox's logs); this module keeps the names
operations has always imported."""

from apps.proxmox.tasklog import (  # noqa: F401
    EtaEstimator,
    ProgressParser,
    parse_any,
    parse_restore,
    parse_transfer,
    parse_vzdump,
    parser_for_task_type,
    register_progress_parser,
)
