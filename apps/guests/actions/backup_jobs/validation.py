"""Checks of a scheduled backup job before it reaches Proxmox: PVE calendar events, storage,
selection, retention; Proxmox's own refusals mapped back onto our field names. Also vzdump's
options that back up now shares."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.proxmox import ProxmoxError, ProxmoxValidationError
from apps.storage.models import Storage

from ...models import Guest


# vzdump's options, shared with back up now (backups package).
MODES = [("snapshot", "Snapshot: no downtime"), ("suspend", "Suspend: a short pause"),
         ("stop", "Stop: consistent, with downtime")]
COMPRESSIONS = [("zstd", "ZSTD (fast, good ratio)"), ("lzo", "LZO (fastest)"), ("gzip", "GZIP (slow)"),
                ("0", "None")]


RETENTION_KEYS = ["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"]
SELECTIONS = [("vmid", "Chosen guests"), ("pool", "A pool"), ("all", "All guests")]


_DAY_NAMES = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_KEYWORDS = {"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
             "semiannually"}


def _weekday(word: str) -> None:
    if len(word) < 3 or not any(name.startswith(word) for name in _DAY_NAMES):
        raise ValueError(f"'{word}' is not a weekday (mon, tue, wed, thu, fri, sat, sun)")


def _numbers(text: str, low: int, high: int, what: str) -> None:
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and not (step.isdigit() and int(step) >= 1):
            raise ValueError(f"'{item}': the repetition after '/' must be a positive number")
        if base == "*":
            continue
        first, dots, last = base.partition("..")
        for value in (first, last) if dots else (first,):
            if not value.isdigit() or not low <= int(value) <= high:
                raise ValueError(f"'{item}': {what} must be * or numbers from {low} to {high}")
        if dots and int(first) > int(last):
            raise ValueError(f"'{item}': the range runs backwards")


def calendar_event_error(text: str) -> str | None:
    """Why `text` is not a PVE calendar event (`[WEEKDAY] [[YEARS-]MONTHS-DAYS] [HOURS:MINUTES[:SECONDS]]`
    or a keyword such as `daily`), or None when it is one."""
    text = (text or "").strip()
    if not text:
        return "enter a schedule, e.g. 'daily', 'mon..fri 02:30' or '*/15'"
    if len(text) > 128:
        return "at most 128 characters"
    if text in _KEYWORDS:
        return None
    parts = text.split()
    try:
        if parts and parts[0][0].isalpha():
            for item in parts.pop(0).split(","):
                for word in item.split(".."):
                    _weekday(word)
        if parts and "-" in parts[0] and ":" not in parts[0]:
            date = parts.pop(0).split("-")
            if len(date) not in (2, 3):
                raise ValueError("a date is MONTHS-DAYS or YEARS-MONTHS-DAYS")
            for value, (low, high, what) in zip(date, [(1970, 9999, "years"), (1, 12, "months"), (1, 31, "days")]
                                                [3 - len(date):]):
                _numbers(value, low, high, what)
        if parts:
            clock = parts.pop(0).split(":")
            if len(clock) == 1:
                _numbers(clock[0], 0, 59, "minutes")
            elif len(clock) in (2, 3):
                for value, (low, high, what) in zip(clock, [(0, 23, "hours"), (0, 59, "minutes"), (0, 59, "seconds")]):
                    _numbers(value, low, high, what)
            else:
                raise ValueError("a time is HOURS:MINUTES or HOURS:MINUTES:SECONDS")
        if parts:
            raise ValueError(f"unexpected '{' '.join(parts)}'")
    except ValueError as exc:
        return f"'{text}' is not a valid calendar event: {exc}"
    return None


def _validate_job(cluster, data: dict) -> dict:
    """The Proxmox parameters for a job described by `data`, or ValidationError naming each field."""
    errors: dict[str, list[str]] = {}
    if problem := calendar_event_error(data.get("schedule", "")):
        errors["schedule"] = [problem]
    storages = set(Storage.objects.filter(cluster=cluster, content__contains=["backup"])
                   .values_list("storage", flat=True))
    storage = data.get("storage") or ""
    if storage not in storages:
        errors["storage"] = [f"'{storage}' is not a backup storage of {cluster}; choose one of: "
                             f"{', '.join(sorted(storages)) or 'none configured'}"]
    selection = data.get("selection") or "vmid"
    params: dict = {"schedule": (data.get("schedule") or "").strip(), "storage": storage,
                    "enabled": bool(data.get("enabled", True)), "mode": data.get("mode") or "snapshot",
                    "compress": data.get("compress") or "zstd", "comment": data.get("comment") or None}
    if selection == "vmid":
        vmids = sorted({int(v) for v in data.get("vmids") or []})
        known = set(Guest.objects.filter(cluster=cluster, vmid__in=vmids).values_list("vmid", flat=True))
        if not vmids:
            errors["vmids"] = ["choose at least one guest"]
        elif unknown := [str(v) for v in vmids if v not in known]:
            errors["vmids"] = [f"no guest {', '.join(unknown)} in cluster {cluster}"]
        params["vmid"] = ",".join(map(str, vmids))
    elif selection == "pool":
        if not (data.get("pool") or "").strip():
            errors["pool"] = ["name the pool whose guests are backed up"]
        params["pool"] = (data.get("pool") or "").strip()
    elif selection == "all":
        params["all"] = True
    else:
        errors["selection"] = ["must be one of vmid, pool, all"]
    if params["mode"] not in dict(MODES):
        errors["mode"] = [f"must be one of {', '.join(dict(MODES))}"]
    if params["compress"] not in dict(COMPRESSIONS):
        errors["compress"] = [f"must be one of {', '.join(dict(COMPRESSIONS))}"]
    retention = data.get("retention") or {}
    parts = []
    for key, value in retention.items():
        if key not in RETENTION_KEYS + ["keep-all"]:
            errors.setdefault("retention", []).append(f"unknown key '{key}'; use {', '.join(RETENTION_KEYS)}")
        elif value in (None, ""):
            continue
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            errors.setdefault("retention", []).append(f"{key} must be a whole number of 0 or more")
        elif value:
            parts.append(f"{key}={value}")
    params["prune-backups"] = ",".join(parts) if parts else "keep-all=1"
    if len(data.get("comment") or "") > 512:
        errors["comment"] = ["at most 512 characters"]
    if errors:
        raise ValidationError(errors)
    return params


_PVE_FIELDS = {"vmid": "vmids", "prune-backups": "retention", "all": "selection"}


def _proxmox_field_errors(exc: ProxmoxError) -> ValidationError:
    if isinstance(exc, ProxmoxValidationError) and exc.errors:
        return ValidationError({_PVE_FIELDS.get(k, k): [f"Proxmox said: {v}"] for k, v in exc.errors.items()})
    return ValidationError({"__all__": [f"Proxmox refused the job: {exc}"]})
