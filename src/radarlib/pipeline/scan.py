"""Which remote hour folders a poll lists: resume point, look-back window, end date (pure).

The server keeps one folder per hour (``<base>/<RADAR>/<YYYY>/<MM>/<DD>/<HH>/``). A poll lists
the hours from the *resume point* (the first hour not yet known complete) up to the present or
the end date. An hour is *closed* once ``lookback`` has passed since it ended; closed hours
whose files were all handled join the :class:`Coverage` kept in the state database, so the
next poll (or process) starts after them instead of re-listing history.

>>> t = datetime(2025, 1, 1, 10, 30, tzinfo=timezone.utc)
>>> [h.hour for h in hours_to_list(resume=t - timedelta(hours=2), now=t, end=None)]
[8, 9, 10]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from radarlib.filename import format_iso, parse_iso

__all__ = [
    "HOUR",
    "Coverage",
    "RescanCursor",
    "advance_coverage",
    "floor_hour",
    "hour_dir",
    "hours_to_list",
    "in_range",
    "is_closed",
    "iter_hours",
    "resume_point",
]

HOUR = timedelta(hours=1)


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour containing ``moment`` (aware input required)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: use timezone-aware UTC")
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def iter_hours(first: datetime, last: datetime) -> Iterator[datetime]:
    """Every hour start from ``floor_hour(first)`` to ``floor_hour(last)``, inclusive."""
    hour, stop = floor_hour(first), floor_hour(last)
    while hour <= stop:
        yield hour
        hour += HOUR


def hour_dir(base: str, radar: str, hour: datetime) -> str:
    """The server folder of one hour, ``<base>/<RADAR>/<YYYY>/<MM>/<DD>/<HH>``."""
    return f"{base.rstrip('/')}/{radar}/{floor_hour(hour):%Y/%m/%d/%H}"


def is_closed(hour: datetime, now: datetime, lookback: timedelta) -> bool:
    """True once no late file is expected any more for ``hour``: ``hour + 1h + lookback <= now``."""
    return floor_hour(hour) + HOUR + lookback <= now


def in_range(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    """``start <= moment <= end`` with open bounds for ``None`` (the end date is inclusive)."""
    return (start is None or moment >= start) and (end is None or moment <= end)


@dataclass(frozen=True)
class Coverage:
    """The contiguous span of hours ``[first, through)`` already listed and fully handled."""

    first: datetime
    through: datetime

    def format(self) -> str:
        """The checkpoint text stored in the state database: ``<ISO first>/<ISO through>``."""
        return f"{format_iso(self.first)}/{format_iso(self.through)}"

    @classmethod
    def parse(cls, text: str | None) -> Coverage | None:
        """The inverse of :meth:`format`; ``None`` for a missing or unreadable checkpoint."""
        first, sep, through = (text or "").partition("/")
        try:
            result = cls(parse_iso(first), parse_iso(through if sep else first))
        except ValueError:
            return None
        return result if result.first <= result.through else None

    def covers(self, hour: datetime) -> bool:
        """True if ``hour`` lies inside the handled span."""
        return self.first <= floor_hour(hour) < self.through


def resume_point(
    *,
    coverage: Coverage | None,
    start: datetime | None,
    latest_observation: datetime | None,
    now: datetime,
    lookback: timedelta,
) -> datetime:
    """The first hour to list after a (re)start; derived from the state DB, never plain "now".

    With a start date: the end of the stored coverage if it contains the start date, else the
    start date. Without one: the end of the coverage, else the hour of the newest recorded file
    minus the look-back, else (first run ever) ``now - lookback``.
    """
    if start is not None:
        if coverage is not None and coverage.first <= floor_hour(start) <= coverage.through:
            return coverage.through
        return floor_hour(start)
    if coverage is not None:
        return coverage.through
    return floor_hour((latest_observation or now) - lookback)


def hours_to_list(*, resume: datetime, now: datetime, end: datetime | None) -> list[datetime]:
    """The hours one poll lists: from the resume point to the present hour (or the end date)."""
    last = floor_hour(now) if end is None else min(floor_hour(now), floor_hour(end))
    return list(iter_hours(resume, last)) if floor_hour(resume) <= last else []


def advance_coverage(
    coverage: Coverage | None, resume: datetime, finished: Iterable[datetime]
) -> Coverage | None:
    """Extend the coverage over the contiguous run of ``finished`` hours starting at ``resume``.

    ``finished`` holds hours listed while closed whose files are all handled. A gap stops the
    advance (the hour after it is listed again at the next poll). A coverage that does not touch
    ``resume`` is replaced by one starting there (the start date moved outside the old span).
    """
    done = {floor_hour(h) for h in finished}
    start = through = floor_hour(resume)
    while through in done:
        through += HOUR
    if through == start:
        return coverage
    if coverage is not None and coverage.first <= start <= coverage.through:
        return Coverage(coverage.first, max(through, coverage.through))
    if coverage is not None and start <= coverage.first <= through:
        return Coverage(start, max(through, coverage.through))
    return Coverage(start, through)


@dataclass(frozen=True)
class RescanCursor:
    """Where the deep rescan stands: the next (older) hour to list, and when its pass began.

    A pass walks from the newest hour the regular polls no longer list back to ``now - days``,
    a slice per poll sized so that a pass takes about ``interval`` seconds; the next pass starts
    ``interval`` after the previous one began.
    """

    next_hour: datetime | None = None
    pass_started: datetime | None = None

    def format(self) -> str:
        """The checkpoint text: ``<ISO next hour or ->/<ISO pass start or ->``."""
        parts = (self.next_hour, self.pass_started)
        return "/".join(format_iso(p) if p is not None else "-" for p in parts)

    @classmethod
    def parse(cls, text: str | None) -> RescanCursor:
        """The inverse of :meth:`format`; a fresh cursor for a missing or unreadable one."""
        try:
            first, _, second = (text or "").partition("/")
            return cls(*(parse_iso(p) if p not in ("", "-") else None for p in (first, second)))
        except ValueError:
            return cls()

    def advance(
        self, *, now: datetime, newest: datetime, days: float, interval: float, poll: float
    ) -> tuple[list[datetime], RescanCursor]:
        """This poll's hours (newest first, from ``newest`` back) and the cursor after them."""
        oldest, newest = floor_hour(now - timedelta(days=days)), floor_hour(newest)
        if days <= 0 or newest < oldest:
            return [], self
        cursor = self
        if cursor.next_hour is None:  # a new pass, when its time has come
            began = cursor.pass_started
            if began is not None and now < began + timedelta(seconds=interval):
                return [], cursor
            cursor = RescanCursor(newest, now)
        per_poll = max(1, math.ceil(((newest - oldest) // HOUR + 1) * poll / interval))
        first = min(cursor.next_hour or newest, newest)
        hours = [hour for i in range(per_poll) if (hour := first - i * HOUR) >= oldest]
        following = hours[-1] - HOUR if hours and hours[-1] - HOUR >= oldest else None
        return hours, RescanCursor(following, cursor.pass_started)
