"""A read-only web view of the state database(s): HTML page, the same data as JSON, health check.

>>> from pathlib import Path
>>> dashboard = Dashboard(DashboardSettings(targets=((Path("state.db"), None),), port=0))
>>> dashboard.start()                       # doctest: +SKIP
>>> print(dashboard.url)                    # doctest: +SKIP
http://127.0.0.1:40213/

Routes (``GET`` and ``HEAD`` only, anything else is 405; unknown paths 404):

- ``/``: one self-contained HTML page (inline CSS, a small inline script that re-fetches the
  page every ``refresh_seconds`` and swaps its content); per radar the volumes per status,
  downloaded files and last download, incomplete volumes and what they miss, the latest
  failures and failed downloads. Every value read from a database is HTML-escaped.
- ``/api/status``: the same snapshot as JSON (``databases`` as ``radarlib status --json``,
  plus ``generated_at`` and ``errors`` for databases that could not be read).
- ``/healthz``: 200 when every state database opens and answers a query and (with
  ``max_download_age``) its newest download is recent enough; 503 with the reasons otherwise.
  It measures the pipeline's state, not this process.

Each request opens the databases through :class:`~radarlib.state.sqlite.SQLiteStateTracker`
and closes them before answering (:func:`radarlib.status.collect_status`), so the dashboard
never holds a lock between requests. It shows database paths and database contents only:
nothing of the configuration (FTP hosts, users, passwords) is ever served.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from radarlib.errors import RadarlibError
from radarlib.filename import format_iso, parse_iso
from radarlib.status import collect_status, require_database

__all__ = [
    "Dashboard",
    "DashboardSettings",
    "check_health",
    "render_page",
    "snapshot",
]

log = logging.getLogger("radarlib.dashboard")

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


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---------------------------------------------------------------------- data


def snapshot(targets: Sequence[Target], *, limit: int = 10) -> dict[str, Any]:
    """The status of every target now, as JSON-ready data (unreadable databases in ``errors``)."""
    databases: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for db, radars in targets:
        try:
            databases.append(asdict(collect_status(db, radars, limit=limit)))
        except RadarlibError as exc:
            errors.append({"path": str(db), "error": str(exc)})
    return {"generated_at": format_iso(_now()), "databases": databases, "errors": errors}


def check_health(
    targets: Sequence[Target],
    *,
    max_download_age: float | None = None,
    now: datetime | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Whether the pipeline's state looks alive: (healthy, JSON-ready report with the reasons).

    Each database must exist, open as a state database and answer a query; with
    ``max_download_age`` (seconds) the newest download of its radars must be at most that old.
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
        newest = max((last for last in lasts if last), default=None)
        entry["newest_download"] = newest
        if newest is not None:
            entry["age_seconds"] = round((moment - parse_iso(newest)).total_seconds(), 1)
        entry["ok"] = True
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
"""

# Re-fetches this page and swaps <main>: one renderer (Python, escaped) for first load and
# refresh alike. Parsed documents never run scripts; errors are shown with textContent.
_SCRIPT = """
(function () {
  var every = %d * 1000;
  var live = document.getElementById("live");
  if (!every) { return; }
  setInterval(function () {
    fetch(location.pathname, {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (text) {
      var fresh = new DOMParser().parseFromString(text, "text/html").querySelector("main");
      if (fresh) { document.querySelector("main").replaceWith(fresh); }
      live.textContent = "refreshed every %d s";
      live.className = "meta";
    }).catch(function (err) {
      live.textContent = "refresh failed (" + err.message + "); showing the last snapshot";
      live.className = "bad";
    });
  }, every);
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


def _radar_overview(db: dict[str, Any]) -> str:
    from radarlib.state.records import VOLUME_STATUSES

    rows = [
        [
            _td(r["radar"]),
            _count(r["files_downloaded"]),
            f"<td>{_when(r['last_download'])}</td>",
            *(_count(r["volumes"].get(s, 0)) for s in VOLUME_STATUSES),
        ]
        for r in db["radars"]
    ]
    header = ["radar", "files downloaded", "last download (UTC)", *VOLUME_STATUSES]
    return _table(header, rows, "overview")


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
    return f"<h3>{_e(radar)}</h3>" + "".join(parts)


def render_page(data: dict[str, Any], *, refresh_seconds: int = 30, nonce: str = "") -> str:
    """The dashboard page of a :func:`snapshot` (every database value escaped)."""
    paths = [db["path"] for db in data["databases"]] + [err["path"] for err in data["errors"]]
    main: list[str] = [
        "<main>",
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


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying the settings its handlers read."""

    daemon_threads = True
    settings: DashboardSettings

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

    def _route(self, *, send_body: bool) -> None:
        settings = self.server.settings
        path = urlsplit(self.path).path
        try:
            if path == "/":
                nonce = secrets.token_urlsafe(16)
                data = snapshot(settings.targets, limit=settings.limit)
                page = render_page(data, refresh_seconds=settings.refresh_seconds, nonce=nonce)
                csp = (
                    "default-src 'none'; style-src 'unsafe-inline'; "
                    f"script-src 'nonce-{nonce}'; connect-src 'self'; "
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
            elif path == "/healthz":
                healthy, report = check_health(
                    settings.health_targets or settings.targets,
                    max_download_age=settings.max_download_age,
                )
                status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
                if not healthy:
                    log.warning("health check failed: %s", "; ".join(report["reasons"]))
                self._send(status, *_json(report), send_body=send_body)
            else:
                self._send(
                    HTTPStatus.NOT_FOUND,
                    *_json({"error": "not found", "paths": ["/", "/api/status", "/healthz"]}),
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
