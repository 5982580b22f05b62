"""What is worth a notification, found by reading the state database now and then.

:class:`Monitor` turns the state of the pipeline into :class:`~radarlib.notify.Event` s, with
de-duplication of states: one ``radar_silent`` when a radar's newest download gets older than
``silent_minutes`` (a radar that never downloaded anything counts from the monitor's start),
then nothing until data arrives again, then one ``radar_recovered``; one ``disk_budget`` when
a kind goes above ``disk_budget_percent`` of its ``max_gb`` until it is back below; one
``daemon_error`` per daemon that stopped; ``volume_completed`` (opt-in) and ``volume_failed``
once per volume that reached that status since the previous check. :meth:`Monitor.check` is
blocking (SQLite): run it off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radarlib.filename import format_iso, parse_iso
from radarlib.notify import Event

if TYPE_CHECKING:
    from radarlib.ops_config import NotificationSettings
    from radarlib.retention import CleanupReport

__all__ = ["Monitor"]

#: volumes finished this long before the monitor started are not announced
_START_SLACK = timedelta(minutes=1)


class Monitor:
    """Finds events in the state databases of ``targets`` (database -> radars)."""

    def __init__(
        self,
        settings: NotificationSettings,
        targets: Sequence[tuple[Path, Sequence[str]]],
        *,
        now: datetime | None = None,
    ) -> None:
        self.settings = settings
        self.targets = [(Path(db), list(radars)) for db, radars in targets]
        self.started = now or datetime.now(timezone.utc)
        self._since = format_iso(self.started - _START_SLACK)
        self._announced: set[str] = set()
        self._silent: set[str] = set()
        self._over_budget: set[str] = set()
        self._daemon_errors: set[str] = set()

    def check(
        self,
        *,
        now: datetime | None = None,
        cleanup: CleanupReport | None = None,
        daemon_errors: Iterable[tuple[str, str]] = (),
    ) -> list[Event]:
        """The events since the last call (blocking)."""
        from radarlib.state.sqlite import SQLiteStateTracker

        moment = now or datetime.now(timezone.utc)
        events: list[Event] = []
        since, self._since = self._since, format_iso(moment - timedelta(seconds=5))
        for db, radars in self.targets:
            if not db.is_file():
                continue
            with SQLiteStateTracker(db, timeout=10.0) as tracker:
                events += self._volumes(tracker, radars, since)
                for radar in radars:
                    _files, last = tracker.download_summary(radar)
                    events += self._silence(radar, last, moment)
        if cleanup is not None:
            events += self._budget(cleanup)
        if self.settings.on_daemon_error:
            for name, error in daemon_errors:
                if name not in self._daemon_errors:
                    self._daemon_errors.add(name)
                    radar = name.split("/")[0]
                    events.append(
                        Event("daemon_error", radar, f"{name} daemon stopped by an error: {error}",
                              {"daemon": name, "error": error})
                    )  # fmt: skip
        return events

    def _volumes(self, tracker: Any, radars: Sequence[str], since: str) -> list[Event]:
        wanted = ["failed"] if self.settings.on_volume_failed else []
        if self.settings.on_volume_completed:
            wanted.append("completed")
        if not wanted or not radars:
            return []
        marks = ",".join("?" * len(wanted))
        radar_marks = ",".join("?" * len(radars))
        sql = (
            "SELECT volume_id, radar_code, status, error_message, netcdf_path, attempts,"
            " observation_datetime FROM volume_processing"
            f" WHERE updated_at >= ? AND status IN ({marks}) AND radar_code IN ({radar_marks})"
            " ORDER BY updated_at, id"
        )
        with tracker._use() as conn:
            rows = conn.execute(sql, (since, *wanted, *radars)).fetchall()
        events = []
        for row in rows:
            key = f"{row['volume_id']}/{row['status']}"
            if key in self._announced:
                continue
            self._announced.add(key)
            details = {"volume_id": row["volume_id"], "observation": row["observation_datetime"]}
            if row["status"] == "failed":
                details |= {"error": row["error_message"], "attempts": row["attempts"]}
                summary = f"volume {row['volume_id']} failed: {row['error_message']}"
                events.append(Event("volume_failed", row["radar_code"], summary, details))
            else:
                details["netcdf_path"] = row["netcdf_path"]
                summary = f"volume {row['volume_id']} written"
                events.append(Event("volume_completed", row["radar_code"], summary, details))
        if len(self._announced) > 100_000:  # bounded memory over years of running
            self._announced.clear()
        return events

    def _silence(self, radar: str, last: str | None, now: datetime) -> list[Event]:
        limit = self.settings.silent_minutes
        if not limit:
            return []
        newest = parse_iso(last) if last else None
        reference = newest if newest is not None else self.started
        age_minutes = (now - reference).total_seconds() / 60
        if age_minutes > limit and radar not in self._silent:
            self._silent.add(radar)
            what = f"newest download at {last}" if last else "nothing downloaded yet"
            return [
                Event("radar_silent", radar, f"{radar} silent for {age_minutes:.0f} min ({what})",
                      {"newest_download": last, "silent_minutes": round(age_minutes, 1)})
            ]  # fmt: skip
        if age_minutes <= limit and radar in self._silent:
            self._silent.discard(radar)
            return [
                Event("radar_recovered", radar, f"{radar} sends data again (newest {last})",
                      {"newest_download": last})
            ]  # fmt: skip
        return []

    def _budget(self, cleanup: CleanupReport) -> list[Event]:
        threshold = self.settings.disk_budget_percent
        if not threshold:
            return []
        events = []
        for kind in cleanup.kinds:
            percent = kind.budget_percent
            if percent is None:
                continue
            key = f"{kind.radar}/{kind.kind}"
            if percent > threshold and key not in self._over_budget:
                self._over_budget.add(key)
                events.append(
                    Event("disk_budget", kind.radar,
                          f"{key} uses {percent:.0f}% of its {kind.rule.max_gb:g} GB budget",
                          {"kind": kind.kind, "percent": round(percent, 1),
                           "bytes": kind.bytes_kept, "held_unconverted": kind.held_unconverted})
                )  # fmt: skip
            elif percent <= threshold:
                self._over_budget.discard(key)
        return events
