"""A read-only web view of the state database(s): HTML page, the same data as JSON, health check.

>>> from pathlib import Path
>>> dashboard = Dashboard(DashboardSettings(targets=((Path("state.db"), None),), port=0))
>>> dashboard.start()                       # doctest: +SKIP
>>> print(dashboard.url)                    # doctest: +SKIP
http://127.0.0.1:40213/

Routes (``GET`` and ``HEAD`` only, anything else is 405; unknown paths 404):

- ``/``: one self-contained HTML page (inline CSS, a small inline script); per radar the
  newest observation and its age, the last 24 h as a timeline of volumes (complete,
  incomplete, failed, pending), the volumes per status, downloaded files and last download,
  incomplete volumes and what they miss, the latest failures with their messages, failed
  downloads, and a quicklook of the newest volume. The script polls ``/api/status`` every
  ``refresh_seconds`` and, when the data changed, swaps in the freshly rendered page content
  (no reload); ages tick every second. Every value read from a database is HTML-escaped.
- ``/api/status``: the same snapshot as JSON (``databases`` as ``radarlib status --json``,
  each with ``live``: per radar newest observation, age, timeline and quicklook volume; plus
  ``generated_at``, ``signature`` (changes when the data does) and ``errors``).
- ``/quicklook/<RADAR>.png``: a PPI of DBZH of the radar's newest written volume (drawn once
  per volume, cached in memory).
- ``/metrics``: Prometheus text format (:mod:`radarlib.metrics`), computed from the databases.
- ``/healthz``: 200 when every state database opens and answers a query, (with
  ``max_download_age``) its newest download is recent enough and (with ``max_age_minutes``)
  every radar is healthy by :func:`radarlib.status.healthz` (its newest download is at most
  that old); 503 naming the databases and radars at fault otherwise. It measures the
  pipeline's state, not this process.

Access: bound to 127.0.0.1 by default. With a ``token`` every route but ``/healthz`` needs
``Authorization: Bearer <token>`` (or ``?token=`` for a browser); the command refuses to bind
another address without one.

Each request opens the databases through :class:`~radarlib.state.sqlite.SQLiteStateTracker`
and closes them before answering (:func:`radarlib.status.collect_status`), so the dashboard
never holds a lock between requests. It shows database paths and database contents only:
nothing of the configuration (FTP hosts, users, passwords) is ever served.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from radarlib.errors import RadarlibError
from radarlib.filename import format_iso, parse_iso
from radarlib.metrics import make_registry
from radarlib.metrics import render as render_metrics
from radarlib.status import collect_status, healthz, require_database

__all__ = [
    "Dashboard",
    "DashboardSettings",
    "check_health",
    "render_page",
    "snapshot",
]

log = logging.getLogger("radarlib.dashboard")

#: Content-Type of the Prometheus text exposition format
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: (state database, radars to show or ``None`` for every radar it knows)
Target = tuple[Path, Sequence[str] | None]


@dataclass(frozen=True)
class DashboardSettings:
    """What the dashboard shows and where it listens.

    Args:
        targets: the databases (and radars) the page and ``/api/status`` show.
        health_targets: the databases (and radars) ``/healthz`` checks; default ``targets``.
        host: address to bind; ``127.0.0.1`` by default (put a reverse proxy in front to
            expose it).
        port: TCP port; 0 picks a free one (see :attr:`Dashboard.url`).
        refresh_seconds: how often the page re-fetches itself; 0 turns that off.
        limit: entries per list (incomplete volumes, failures, failed downloads).
        max_download_age: seconds; when set, ``/healthz`` fails for a database whose newest
            download is older than this (or that has none).
    """

    targets: tuple[Target, ...]
    health_targets: tuple[Target, ...] | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    refresh_seconds: int = 30
    limit: int = 10
    max_download_age: float | None = None
    #: minutes; when set, ``/healthz`` fails naming each radar :func:`radarlib.status.healthz`
    #: finds unhealthy: its newest download is older, or it never downloaded anything
    #: (``[health] max_age_minutes``)
    max_age_minutes: float | None = None
    #: when set, every route but ``/healthz`` needs ``Authorization: Bearer <token>`` or
    #: ``?token=<token>`` (required when bound to an address other than loopback)
    token: str | None = field(default=None, repr=False)
    #: draw the newest volume of each radar as a PNG (``/quicklook/<RADAR>.png``)
    quicklooks: bool = True


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------- data


#: the span of the timeline, hours
TIMELINE_HOURS = 24


def _live(db: Path, radars: Sequence[str], now: datetime) -> dict[str, Any]:
    """Per radar: newest observation and its age, the timeline, the newest written volume."""
    from radarlib.state.ops_rows import newest_netcdf, volume_timeline
    from radarlib.state.sqlite import SQLiteStateTracker

    since = format_iso(now - timedelta(hours=TIMELINE_HOURS))
    live: dict[str, Any] = {}
    with SQLiteStateTracker(db, timeout=5.0) as tracker:
        for radar in radars:
            newest = tracker.latest_observation(radar)
            written = newest_netcdf(tracker, radar)
            live[radar] = {
                "newest_observation": None if newest is None else format_iso(newest),
                "age_seconds": None if newest is None else round((now - newest).total_seconds(), 1),
                "timeline": volume_timeline(tracker, radar, since),
                "quicklook_volume": None if written is None else written[0],
            }
    return live


def snapshot(targets: Sequence[Target], *, limit: int = 10) -> dict[str, Any]:
    """The status of every target now, as JSON-ready data (unreadable databases in ``errors``)."""
    now = _now()
    databases: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for db, radars in targets:
        try:
            data = asdict(collect_status(db, radars, limit=limit))
            data["live"] = _live(db, [r["radar"] for r in data["radars"]], now)
            databases.append(data)
        except RadarlibError as exc:
            errors.append({"path": str(db), "error": str(exc)})
    stable = json.dumps(
        [databases, errors], sort_keys=True, default=str
    )  # ages aside (they tick): strip them before hashing
    stable = re.sub(r'"age_seconds": [0-9.e+-]+', "", stable)
    return {
        "generated_at": format_iso(now),
        "signature": hashlib.sha256(stable.encode()).hexdigest()[:16],
        "databases": databases,
        "errors": errors,
    }


def check_health(
    targets: Sequence[Target],
    *,
    max_download_age: float | None = None,
    max_age_minutes: float | None = None,
    now: datetime | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Whether the pipeline's state looks alive: (healthy, JSON-ready report with the reasons).

    Each database must exist, open as a state database and answer a query; with
    ``max_download_age`` (seconds) the newest download of its radars must be at most that old;
    with ``max_age_minutes`` each radar must be healthy by :func:`radarlib.status.healthz`
    (a radar that never downloaded anything fails, named in the reasons).
    """
    from radarlib.state.sqlite import SQLiteStateTracker

    moment = now or _now()
    reasons: list[str] = []
    checked: list[dict[str, Any]] = []
    for db, radars in targets:
        entry: dict[str, Any] = {"path": str(db), "newest_download": None, "age_seconds": None}
        checked.append(entry)
        try:
            require_database(db)
            with SQLiteStateTracker(db, timeout=5.0) as tracker:
                codes = list(radars) if radars else tracker.radar_codes()
                lasts = [tracker.download_summary(code)[1] for code in codes]
        except RadarlibError as exc:
            entry["ok"] = False
            reasons.append(str(exc))
            continue
        entry["ok"] = True
        if max_age_minutes is not None:
            health = healthz([(db, codes)], max_age_minutes=max_age_minutes, now=moment)
            entry["radars"] = [asdict(radar) for radar in health.radars]
            entry["ok"] = health.healthy
            if health.errors:
                reasons += health.errors
                continue
            reasons += [f"{radar.radar}: {radar.reason}" for radar in health.unhealthy]
        newest = max((last for last in lasts if last), default=None)
        entry["newest_download"] = newest
        if newest is not None:
            entry["age_seconds"] = round((moment - parse_iso(newest)).total_seconds(), 1)
        if max_download_age is None:
            continue
        if newest is None:
            entry["ok"] = False
            reasons.append(f"{db}: no download recorded yet")
        elif entry["age_seconds"] > max_download_age:
            entry["ok"] = False
            reasons.append(
                f"{db}: newest download at {newest} is {entry['age_seconds']:.0f} s old "
                f"(limit {max_download_age:g} s)"
            )
    if not targets:
        reasons.append("no state database configured")
    healthy = not reasons
    report = {
        "status": "ok" if healthy else "unhealthy",
        "checked_at": format_iso(moment),
        "reasons": reasons,
        "max_download_age": max_download_age,
        "max_age_minutes": max_age_minutes,
        "databases": checked,
    }
    return healthy, report


# ---------------------------------------------------------------------- page

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em}
h3{font-size:1em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.3em 0 1em;background:#fff}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#555}.bad{color:#a00}.ok{color:#070}.msg{font-family:monospace;white-space:pre-wrap}
.zero{color:#aaa}section{border-top:2px solid #ddd;margin-top:1em}
.timeline svg{background:#fff;border:1px solid #ddd;vertical-align:middle}
rect.complete{fill:#2a2}rect.incomplete{fill:#e90}rect.failed{fill:#d22}rect.pending{fill:#99a}
line.tick{stroke:#eee}figure{margin:.5em 0}img.quicklook{border:1px solid #ddd;background:#fff}
"""

# Polls /api/status; when its signature changed, fetches this page and swaps <main> (one
# renderer, Python and escaped, for first load and updates). Parsed documents never run
# scripts; errors are shown with textContent. Ages tick every second from data-time.
_SCRIPT = """
(function () {
  var every = %d * 1000;
  var live = document.getElementById("live");
  var query = location.search;
  function age(seconds) {
    var m = Math.max(0, Math.floor(seconds / 60));
    if (m < 120) { return m + " min"; }
    if (m < 2880) { return Math.floor(m / 60) + " h"; }
    return Math.floor(m / 1440) + " d";
  }
  var shownAt = Date.now();
  function tick() {
    // the server's clock decides: its time when the content was rendered, plus time since
    var now = Date.parse(document.querySelector("main").getAttribute("data-generated"))
      + (Date.now() - shownAt);
    var cells = document.querySelectorAll("td.age[data-time]");
    for (var i = 0; i < cells.length; i++) {
      var t = Date.parse(cells[i].getAttribute("data-time"));
      if (!isNaN(t) && !isNaN(now)) { cells[i].textContent = age((now - t) / 1000); }
    }
  }
  function failed(err) {
    live.textContent = "refresh failed (" + err.message + "); showing the last snapshot";
    live.className = "bad";
  }
  function swap() {
    return fetch(location.pathname + query, {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
      if (fresh) {
        document.querySelector("main").replaceWith(fresh);
        shownAt = Date.now();
        tick();
      }
    });
  }
  function poll() {
    fetch("api/status" + query, {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (data) {
      var shown = document.querySelector("main").getAttribute("data-signature");
      live.textContent = "checked every %d s; last check " + data.generated_at;
      live.className = "meta";
      if (data.signature !== shown) { return swap(); }
    }).catch(failed);
  }
  setInterval(tick, 1000);
  if (every) { setInterval(poll, every); }
})();
"""


def _e(value: object) -> str:
    """A value from a database as safe HTML text (``None`` as a dash)."""
    return "&mdash;" if value is None or value == "" else html.escape(str(value), quote=True)


def _when(value: object) -> str:
    return "never" if not value else _e(str(value).replace("T", " ").rstrip("Z"))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """A table: ``header`` is plain text (escaped here), ``rows`` hold already-escaped cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: object, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{_e(value)}</td>"


def _count(number: int) -> str:
    return f'<td class="n{" zero" if not number else ""}">{int(number)}</td>'


def _age(live: dict[str, Any]) -> str:
    """The age cell: text now, kept ticking by the script from ``data-time``."""
    newest = live.get("newest_observation")
    if not newest:
        return '<td class="age bad">no data</td>'
    seconds = float(live.get("age_seconds") or 0)
    return f'<td class="age" data-time="{_e(newest)}">{_e(_duration(seconds))}</td>'


def _duration(seconds: float) -> str:
    minutes = int(max(0.0, seconds) // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} d"


def _radar_overview(db: dict[str, Any]) -> str:
    from radarlib.state.records import VOLUME_STATUSES

    live = db.get("live", {})
    rows = [
        [
            _td(r["radar"]),
            f"<td>{_when(live.get(r['radar'], {}).get('newest_observation'))}</td>",
            _age(live.get(r["radar"], {})),
            _count(r["files_downloaded"]),
            f"<td>{_when(r['last_download'])}</td>",
            *(_count(r["volumes"].get(s, 0)) for s in VOLUME_STATUSES),
        ]
        for r in db["radars"]
    ]
    header = [
        "radar", "newest observation (UTC)", "age", "files downloaded", "last download (UTC)",
        *VOLUME_STATUSES,
    ]  # fmt: skip
    return _table(header, rows, "overview")


_TIMELINE_WIDTH = 576  # px for 24 h: one pixel per 2.5 minutes


def _timeline(radar: str, live: dict[str, Any], generated_at: str) -> str:
    """The last 24 h of a radar's volumes as an inline SVG (a mark per volume, by state)."""
    end = parse_iso(generated_at)
    span = TIMELINE_HOURS * 3600.0
    marks: list[str] = []
    counts: dict[str, int] = {}
    for item in live.get("timeline", []):
        offset = span - (end - parse_iso(item["time"])).total_seconds()
        x = max(0.0, min(1.0, offset / span)) * (_TIMELINE_WIDTH - 3)
        state = item["state"]
        counts[state] = counts.get(state, 0) + 1
        marks.append(
            f'<rect class="v {_e(state)}" x="{x:.1f}" y="2" width="3" height="16">'
            f"<title>{_e(item['volume_id'])}: {_e(state)}</title></rect>"
        )
    ticks = "".join(
        f'<line x1="{h * _TIMELINE_WIDTH / 24:.0f}" y1="0" x2="{h * _TIMELINE_WIDTH / 24:.0f}" '
        'y2="20" class="tick"/>'
        for h in range(0, 25, 6)
    )
    legend = ", ".join(f"{n} {_e(k)}" for k, n in sorted(counts.items())) or "no volumes"
    return (
        f'<div class="timeline" data-radar="{_e(radar)}">'
        f'<svg width="{_TIMELINE_WIDTH}" height="20" role="img" '
        f'aria-label="volumes of {_e(radar)} in the last 24 h">{ticks}{"".join(marks)}</svg>'
        f'<span class="meta"> last 24 h: {legend}</span></div>'
    )


def _radar_live(db: dict[str, Any], radar: str, generated_at: str, query: str) -> str:
    live = db.get("live", {}).get(radar, {})
    parts = [f'<div class="radar" id="radar-{_e(radar)}"><h3>{_e(radar)}</h3>']
    parts.append(_timeline(radar, live, generated_at))
    volume = live.get("quicklook_volume")
    if volume:
        source = f"quicklook/{html.escape(radar)}.png?v={html.escape(volume)}{query}"
        parts.append(
            f'<figure><img class="quicklook" src="{source}" width="400" height="350" '
            f'alt="quicklook of {_e(volume)}"><figcaption class="meta">{_e(volume)}'
            "</figcaption></figure>"
        )
    parts.append("</div>")
    return "".join(parts)


def _radar_details(db: dict[str, Any], radar: str) -> str:
    """Incomplete volumes, failures and failed downloads of one radar (empty when none)."""
    incomplete = [v for v in db["incomplete"] if v["radar_code"] == radar]
    failures = [v for v in db["failures"] if v["radar_code"] == radar]
    downloads = [d for d in db["download_failures"] if d["radar_code"] == radar]
    parts: list[str] = []
    if incomplete:
        rows = [
            [
                _td(v["volume_id"]),
                _td("expired" if v["status"] == "expired" else "waiting"),
                _td(v["missing_fields"], "bad"),
                _td(v["downloaded_fields"] or "nothing"),
                f"<td>{_when(v['updated_at'])}</td>",
            ]
            for v in incomplete
        ]
        header = ["volume", "state", "missing fields", "has", "updated (UTC)"]
        parts.append("<h4>incomplete volumes</h4>" + _table(header, rows, "incomplete"))
    if failures:
        rows = [
            [
                _td(v["volume_id"]),
                _td(
                    "failed"
                    if v["status"] == "failed"
                    else f"retry at {str(v['next_attempt_at'] or '?').rstrip('Z')}"
                ),
                _count(v["attempts"] or 0),
                _td(v.get("file")),
                _td(v["error_message"], "msg"),
                f"<td>{_when(v['updated_at'])}</td>",
            ]
            for v in failures
        ]
        header = ["volume", "status", "attempts", "file", "message", "updated (UTC)"]
        parts.append("<h4>latest failures</h4>" + _table(header, rows, "failures"))
    if downloads:
        rows = [
            [
                _td(d["filename"]),
                _count(d["attempts"] or 0),
                f"<td>{_when(d['next_attempt_at'])}</td>",
                _td(d["last_error"], "msg"),
                f"<td>{_when(d['updated_at'])}</td>",
            ]
            for d in downloads
        ]
        header = ["file", "attempts", "next attempt (UTC)", "error", "updated (UTC)"]
        parts.append("<h4>failed downloads</h4>" + _table(header, rows, "download-failures"))
    if not parts:
        return ""
    return f"<h3>{_e(radar)}: problems</h3>" + "".join(parts)


def render_page(
    data: dict[str, Any], *, refresh_seconds: int = 30, nonce: str = "", token: str | None = None
) -> str:
    """The dashboard page of a :func:`snapshot` (every database value escaped).

    ``token`` (the one the request carried) is added to the image links of the page.
    """
    query = "" if not token else "&amp;token=" + html.escape(quote(token, safe=""))
    paths = [db["path"] for db in data["databases"]] + [err["path"] for err in data["errors"]]
    main: list[str] = [
        f'<main data-signature="{_e(data.get("signature", ""))}" '
        f'data-generated="{_e(data["generated_at"])}">',
        f'<p class="meta">snapshot at <time>{_when(data["generated_at"])}</time> UTC '
        f"&middot; state database{'s' if len(paths) != 1 else ''}: "
        + ", ".join(f"<code>{_e(p)}</code>" for p in paths)
        + "</p>",
    ]
    for err in data["errors"]:
        main.append(
            f'<section><h2>{_e(err["path"])}</h2><p class="bad msg">cannot read: '
            f"{_e(err['error'])}</p></section>"
        )
    for db in data["databases"]:
        main.append(f"<section><h2>{_e(db['path'])}</h2>")
        if not db["radars"]:
            main.append('<p class="meta">no radar has recorded anything yet</p></section>')
            continue
        main.append(_radar_overview(db))
        main.extend(_radar_live(db, r["radar"], data["generated_at"], query) for r in db["radars"])
        details = [_radar_details(db, r["radar"]) for r in db["radars"]]
        if any(details):
            main.extend(details)
        else:
            main.append('<p class="ok">no incomplete volumes, no failures</p>')
        main.append("</section>")
    main.append("</main>")
    script_nonce = f' nonce="{html.escape(nonce)}"' if nonce else ""
    refresh = int(refresh_seconds)
    live = f"refreshed every {refresh} s" if refresh > 0 else "not refreshed automatically"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>radarlib dashboard</title>"
        f"<style>{_CSS}</style></head><body>"
        f'<h1>radarlib dashboard</h1><p id="live" class="meta">{live}</p>'
        + "".join(main)
        + f"<script{script_nonce}>{_SCRIPT % (refresh, refresh)}</script>"
        "</body></html>\n"
    )


# ---------------------------------------------------------------------- HTTP


#: the fields a quicklook shows, by preference (a volume holds some of them)
_QUICKLOOK_FIELDS = ("DBZH", "TH", "DBZV", "VRAD", "ZDR", "WRAD")


class Quicklooks:
    """The PNG of each radar's newest written volume, drawn once per volume (thread-safe)."""

    def __init__(self, targets: Sequence[Target]) -> None:
        self.targets = targets
        self._cache: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def _newest(self, radar: str) -> tuple[str, str] | None:
        from radarlib.state.ops_rows import newest_netcdf
        from radarlib.state.sqlite import SQLiteStateTracker

        found: list[tuple[str, str]] = []
        for db, radars in self.targets:
            if radars and radar not in radars:
                continue
            try:
                require_database(db)
                with SQLiteStateTracker(db, timeout=5.0) as tracker:
                    if radar in tracker.radar_codes():
                        written = newest_netcdf(tracker, radar)
                        if written is not None:
                            found.append(written)
            except RadarlibError:
                continue
        # volume ids end with the observation time: the largest is the newest
        return max(found, key=lambda item: item[0][-20:], default=None)

    def get(self, radar: str) -> bytes | None:
        """The PNG bytes, or None when the radar has no readable written volume."""
        import tempfile

        newest = self._newest(radar)
        if newest is None:
            return None
        volume_id, nc_path = newest
        with self._lock:
            cached = self._cache.get(radar)
            if cached is not None and cached[0] == volume_id:
                return cached[1]
            from radarlib.quicklook import quicklook

            with tempfile.TemporaryDirectory(prefix="radarlib-quicklook-") as folder:
                png = Path(folder) / "q.png"
                problem: Exception | None = None
                for field in _QUICKLOOK_FIELDS:  # reflectivity volumes first, else Doppler
                    try:
                        quicklook(nc_path, png, field=field, size_px=(400, 350))
                        break
                    except (OSError, RadarlibError, ValueError, KeyError) as exc:
                        problem = exc
                else:
                    log.warning("quicklook of %s (%s) failed: %s", volume_id, nc_path, problem)
                    return None
                data = png.read_bytes()
            self._cache[radar] = (volume_id, data)
            return data


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying the settings, metrics registry and quicklooks handlers use."""

    daemon_threads = True
    settings: DashboardSettings
    registry: Any
    quicklooks: Quicklooks

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("request from %s failed", client_address[0], exc_info=True)


class _Server6(_Server):
    """The same server on an IPv6 address (``--host ::1``)."""

    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD of ``/``, ``/api/status`` and ``/healthz``; 404 elsewhere, 405 other methods."""

    server: _Server
    server_version = "radarlib-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; every method but GET/HEAD is 405.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._route(send_body=True)

    def do_HEAD(self) -> None:
        self._route(send_body=False)

    def _method_not_allowed(self) -> None:
        self._send(
            HTTPStatus.METHOD_NOT_ALLOWED,
            *_json({"error": f"method {self.command} not allowed; use GET or HEAD"}),
            extra={"Allow": "GET, HEAD"},
        )

    def _token(self) -> str | None:
        """The token the request carries (bearer header or ``token`` query parameter)."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[len("Bearer ") :].strip()
        values = parse_qs(urlsplit(self.path).query).get("token")
        return values[0] if values else None

    def _authorized(self, path: str) -> bool:
        expected = self.server.settings.token
        if not expected or path == "/healthz":
            return True
        given = self._token() or ""
        return hmac.compare_digest(given.encode(), expected.encode())

    def _route(self, *, send_body: bool) -> None:
        settings = self.server.settings
        path = urlsplit(self.path).path
        try:
            if not self._authorized(path):
                self._send(
                    HTTPStatus.UNAUTHORIZED,
                    *_json({"error": "a token is required: Authorization: Bearer <token>"}),
                    extra={"WWW-Authenticate": 'Bearer realm="radarlib"'},
                    send_body=send_body,
                )
            elif path == "/":
                nonce = secrets.token_urlsafe(16)
                data = snapshot(settings.targets, limit=settings.limit)
                page = render_page(
                    data,
                    refresh_seconds=settings.refresh_seconds,
                    nonce=nonce,
                    token=self._token() if settings.token else None,
                )
                csp = (
                    "default-src 'none'; style-src 'unsafe-inline'; "
                    f"script-src 'nonce-{nonce}'; connect-src 'self'; img-src 'self'; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
                )
                self._send(
                    HTTPStatus.OK,
                    "text/html; charset=utf-8",
                    page.encode("utf-8"),
                    extra={"Content-Security-Policy": csp},
                    send_body=send_body,
                )
            elif path == "/api/status":
                data = snapshot(settings.targets, limit=settings.limit)
                self._send(HTTPStatus.OK, *_json(data), send_body=send_body)
            elif path == "/favicon.ico":  # browsers ask for it: no icon, and no error
                self._send(HTTPStatus.NO_CONTENT, "image/x-icon", b"", send_body=False)
            elif path == "/metrics":
                body = render_metrics(self.server.registry)
                self._send(HTTPStatus.OK, METRICS_CONTENT_TYPE, body, send_body=send_body)
            elif path.startswith("/quicklook/") and path.endswith(".png"):
                radar = path[len("/quicklook/") : -len(".png")]
                png = self.server.quicklooks.get(radar) if settings.quicklooks else None
                if png is None:
                    self._send(
                        HTTPStatus.NOT_FOUND,
                        *_json({"error": f"no quicklook for {radar!r}"}),
                        send_body=send_body,
                    )
                else:
                    self._send(HTTPStatus.OK, "image/png", png, send_body=send_body)
            elif path == "/healthz":
                healthy, report = check_health(
                    settings.health_targets or settings.targets,
                    max_download_age=settings.max_download_age,
                    max_age_minutes=settings.max_age_minutes,
                )
                status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
                if not healthy:
                    log.warning("health check failed: %s", "; ".join(report["reasons"]))
                self._send(status, *_json(report), send_body=send_body)
            else:
                self._send(
                    HTTPStatus.NOT_FOUND,
                    *_json(
                        {
                            "error": "not found",
                            "paths": ["/", "/api/status", "/healthz", "/metrics"],
                        }
                    ),
                    send_body=send_body,
                )
        except Exception:  # never a traceback to the client; the log has it
            log.exception("%s %s failed", self.command, path)
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                *_json({"error": "internal error; see the dashboard's log"}),
                send_body=send_body,
            )

    def _send(
        self,
        status: HTTPStatus,
        content_type: str,
        body: bytes,
        *,
        extra: dict[str, str] | None = None,
        send_body: bool = True,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def _json(data: Any) -> tuple[str, bytes]:
    return "application/json", json.dumps(data, indent=2).encode("utf-8")


class Dashboard:
    """The dashboard's HTTP server, served from a background thread until :meth:`stop`."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind (``OSError`` if the address is taken) and start serving in a thread."""
        kind = _Server6 if ":" in self.settings.host else _Server
        server = kind((self.settings.host, self.settings.port), _Handler)
        server.settings = self.settings
        server.registry = make_registry(self.settings.targets)
        server.quicklooks = Quicklooks(self.settings.targets)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="radarlib-dashboard", daemon=True
        )
        self._thread.start()
        log.info("dashboard serving %s", self.url)

    @property
    def url(self) -> str:
        """``http://host:port/`` as bound (the real port when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("dashboard not started")
        host, port = self._server.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}/"

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent; requests in flight are not awaited)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        log.info("dashboard stopped")
