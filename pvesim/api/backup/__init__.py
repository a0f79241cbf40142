"""Backups: vzdump, vzdump defaults/extractconfig, backup jobs (/cluster/backup), backup info,
schedule analysis, a scheduler running due jobs, and restore (pve-semantics §9).

`restore_guest(ctx, kind, node, vmid, archive, storage, force, unique, pool, params)` is what
the qemu/lxc create handlers call for `archive=` / `restore=1`.

Code by concern:

    common     vzdump option schema (VZDUMP_OPTS, JOB_ONLY, ...), backup locks, guest disks, guest selection
    vzdump     POST vzdump, the backup task, prune after backup, vzdump/defaults, vzdump/extractconfig
    restore    restore_guest (qmrestore/vzrestore)
    calendar   CalendarEvent (systemd calendar events), /cluster/jobs/schedule-analyze
    jobs       /cluster/backup jobs, included_volumes, backup-info/not-backed-up
    scheduler  BackupScheduler and install()
"""

from __future__ import annotations

from .common import (COMPRESS_EXT, COMPRESS_RATIO, DOW, FLEECING, JOB_ID, JOB_ONLY, PERFORMANCE, ROOT_ONLY,
                     VZDUMP_DEFAULTS, VZDUMP_OPTS, backup_disks, command_line, included_guests, set_lock,
                     verify_vzdump_parameters)
from .vzdump import config_text, extractconfig, start_backup_task, storage_api_format, vzdump, vzdump_defaults
from .restore import restore_guest
from .calendar import CalendarEvent, parse_calendar, schedule_analyze
from .jobs import job_create, job_delete, job_included_volumes, job_index, job_read, job_update, not_backed_up
from .scheduler import BackupScheduler, install

__all__ = [
    "COMPRESS_EXT", "COMPRESS_RATIO", "DOW", "FLEECING", "JOB_ID", "JOB_ONLY", "PERFORMANCE", "ROOT_ONLY",
    "VZDUMP_DEFAULTS", "VZDUMP_OPTS", "BackupScheduler", "CalendarEvent", "backup_disks", "command_line", "config_text",
    "extractconfig", "included_guests", "install", "job_create", "job_delete", "job_included_volumes", "job_index",
    "job_read", "job_update", "not_backed_up", "parse_calendar", "restore_guest", "schedule_analyze", "set_lock",
    "start_backup_task", "storage_api_format", "verify_vzdump_parameters", "vzdump", "vzdump_defaults",
]
