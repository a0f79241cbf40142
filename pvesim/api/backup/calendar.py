"""systemd-style calendar events (backup job schedules) and /cluster/jobs/schedule-analyze."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

from ...params import P
from ...router import api
from .common import DOW, _bad


# ---- calendar events ---------------------------------------------------------------------------

_KEYWORDS = {"minutely": "*-*-* *:*:00", "hourly": "*-*-* *:00:00", "daily": "*-*-* 00:00:00",
             "weekly": "mon *-*-* 00:00:00", "monthly": "*-*-01 00:00:00", "yearly": "*-01-01 00:00:00",
             "annually": "*-01-01 00:00:00", "quarterly": "*-01,04,07,10-01 00:00:00",
             "semiannually": "*-01,07-01 00:00:00"}


class CalendarEvent:
    """systemd-style calendar events as PVE accepts them (`mon..fri 02:30`, `*/15`, `sat 03:00`)."""

    def __init__(self, text: str):
        self.text = text
        spec = _KEYWORDS.get(text.strip(), text.strip())
        parts = spec.split()
        if not parts:
            raise ValueError
        self.days = set(range(7))
        if parts and re.fullmatch(r"[a-z.,]+", parts[0]) and not re.fullmatch(r"\d", parts[0]):
            self.days = self._weekdays(parts.pop(0))
        self.years = self.months = self.mdays = None
        if parts and "-" in parts[0] and ":" not in parts[0]:
            date = parts.pop(0).split("-")
            if len(date) == 2:
                date = ["*"] + date
            if len(date) != 3:
                raise ValueError
            self.years = self._field(date[0], 1970, 9999)
            self.months = self._field(date[1], 1, 12)
            self.mdays = self._field(date[2], 1, 31)
        hours, minutes, seconds = set(range(24)), {0}, {0}
        if parts:
            tparts = parts.pop(0).split(":")
            if len(tparts) == 1:  # `*/15` or `5`: minutes of every hour
                minutes = self._field(tparts[0], 0, 59)
            elif len(tparts) in (2, 3):
                hours = self._field(tparts[0], 0, 23)
                minutes = self._field(tparts[1], 0, 59)
                if len(tparts) == 3:
                    seconds = self._field(tparts[2], 0, 59)
            else:
                raise ValueError
        if parts:
            raise ValueError
        self.hours, self.minutes, self.seconds = sorted(hours), sorted(minutes), sorted(seconds)

    @staticmethod
    def _weekdays(text: str) -> set[int]:
        out = set()
        for item in text.split(","):
            if ".." in item:
                a, b = item.split("..")
                ia, ib = DOW.index(a[:3]), DOW.index(b[:3])
                out.update(range(ia, ib + 1) if ia <= ib else list(range(ia, 7)) + list(range(0, ib + 1)))
            else:
                out.add(DOW.index(item[:3]))
        return out

    @staticmethod
    def _field(text: str, lo: int, hi: int) -> set[int]:
        out: set[int] = set()
        for item in text.split(","):
            step = 1
            if "/" in item:
                item, step_text = item.split("/")
                step = int(step_text)
                if step < 1:
                    raise ValueError
                start = lo if item in ("*", "") else int(item)
                end = hi
            elif item == "*":
                start, end = lo, hi
            elif ".." in item:
                a, b = item.split("..")
                start, end = int(a), int(b)
            else:
                start = end = int(item)
            if start < lo or end > hi or start > end:
                raise ValueError
            out.update(range(start, end + 1, step))
        return out

    def next_after(self, after: float) -> int | None:
        """First matching time strictly after `after` (local time), or None within ~5 years."""
        t = datetime.fromtimestamp(int(after)) + timedelta(seconds=1)
        day = t.replace(hour=0, minute=0, second=0)
        for _ in range(366 * 5):
            if day.weekday() in self.days and (self.years is None or day.year in self.years) \
                    and (self.months is None or day.month in self.months) and (self.mdays is None or day.day in self.mdays):
                for h in self.hours:
                    for m in self.minutes:
                        for s in self.seconds:
                            cand = day.replace(hour=h, minute=m, second=s)
                            if cand >= t:
                                return int(cand.timestamp())
            day += timedelta(days=1)
        return None


def parse_calendar(text: str, field: str = "schedule") -> CalendarEvent:
    try:
        return CalendarEvent(text)
    except (ValueError, IndexError):
        _bad(field, f"invalid format - unable to parse calendar event '{text}'")
        raise  # unreachable


@api.get("/cluster/jobs/schedule-analyze", params={
    "schedule": P.string(optional=False, format="pve-calendar-event", max_length=128),
    "iterations": P.integer(minimum=1, maximum=100), "starttime": P.integer()})
def schedule_analyze(ctx, p):
    event = parse_calendar(p["schedule"])
    now = p.get("starttime", int(time.time()))
    out = []
    for _ in range(p.get("iterations", 10)):
        nxt = event.next_after(now)
        if nxt is None:
            break
        g = datetime.fromtimestamp(nxt, tz=timezone.utc)
        out.append({"timestamp": nxt, "utc": f"{g.strftime('%a %b')} {g.day:2d} {g.strftime('%H:%M:%S %Y')}"})
        now = nxt
    return out
