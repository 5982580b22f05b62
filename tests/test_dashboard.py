"""`radarlib dashboard` served from a subprocess on 127.0.0.1, read with urllib as a browser would.

Real state databases built with the tracker; the page, /api/status and /healthz are fetched
over HTTP; hostile text from the database must come back escaped; missing, corrupt and stale
databases must make /healthz fail; SIGTERM/SIGINT must stop the server with exit code 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest

from radarlib.state.sqlite import SQLiteStateTracker
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

pytestmark = pytest.mark.timeout(120)

FAILED_FILE = "RMA1_0315_02_VRAD_20251118T123500Z.BUFR"
FAILED_ID = "RMA1_0315_02_2025-11-18T12:35:00Z"
WAITING_ID = "RMA1_0315_01_2025-11-18T12:30:00Z"
DONE_ID = "RMA5_0315_02_2025-11-18T12:35:00Z"
DOWNLOAD_FAILED = "RMA5_0315_01_DBZH_20251118T124000Z.BUFR"
HOSTILE_ERROR = (
    f"VolumeError: {FAILED_FILE}: cannot decode: <script>alert(1)</script> & \"quoted\" 'x'"
)
HOSTILE_DOWNLOAD_ERROR = "TransportError: 550 <img src=x onerror=alert(2)> no such file"
PASSWORD = "s3cret-Pa55word-do-not-show"


def record(tracker: SQLiteStateTracker, name: str) -> list[str]:
    fields = {"01": DEFAULT_VOLUME_TYPES["0315"]["01"], "02": DEFAULT_VOLUME_TYPES["0315"]["02"]}
    return tracker.mark_downloaded(
        name, f"/L2/{name}", f"/data/{name}", 1000, "ab" * 32,
        expected_fields=fields[name.split("_")[2]],
    )  # fmt: skip


def build_db(path: Path, *, downloaded_at: datetime | None = None) -> Path:
    """RMA1: one waiting volume, one failed volume; RMA5: one completed, one failed download."""
    clock = (lambda: downloaded_at) if downloaded_at is not None else None
    with SQLiteStateTracker(path, clock=clock) as tracker:
        for field in ("DBZH", "DBZV", "ZDR", "KDP"):  # PHIDP, RHOHV missing
            record(tracker, f"RMA1_0315_01_{field}_20251118T123000Z.BUFR")
        record(tracker, "RMA1_0315_02_WRAD_20251118T123500Z.BUFR")
        assert record(tracker, FAILED_FILE) == [FAILED_ID]
        [claimed] = tracker.claim_volumes("w1", 1, radar_code="RMA1")
        tracker.fail_volume(claimed["volume_id"], "w1", HOSTILE_ERROR, retry_at=None)
        for field in ("VRAD", "WRAD"):
            record(tracker, f"RMA5_0315_02_{field}_20251118T123500Z.BUFR")
        [done] = tracker.claim_volumes("w2", 1, radar_code="RMA5")
        tracker.finish_volume(done["volume_id"], "w2", "/out/RMA5_0315_02_20251118T123500Z.nc")
        tracker.mark_download_failed(
            DOWNLOAD_FAILED, f"/L2/RMA5/2025/11/18/12/4000/{DOWNLOAD_FAILED}",
            HOSTILE_DOWNLOAD_ERROR, next_attempt_at=datetime.now(timezone.utc) + timedelta(days=1),
        )  # fmt: skip
    return path


@dataclass
class Served:
    """A running `radarlib dashboard` subprocess and its URL."""

    proc: subprocess.Popen[str]
    url: str
    stderr: Path

    def get(self, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url.rstrip("/") + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str) -> tuple[int, dict]:
        status, _, body = self.get(path)
        return status, json.loads(body)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Served:
    """Start the dashboard on a free port and read the URL it prints."""
    stderr = tmp_path / f"dashboard-{len(list(tmp_path.glob('dashboard-*')))}.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith("RADARLIB_")}
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "radarlib", "dashboard", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=err, text=True, env={**base, **(env or {})},
        )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if found is None:
        proc.kill()
        proc.wait()
        pytest.fail(f"no URL on stdout ({line!r}); stderr: {stderr.read_text()}")
    return Served(proc, found.group(0), stderr)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    db = build_db(tmp_path / "state.db")
    served = serve(tmp_path, "--db", str(db), "--max-download-age", "3600")
    try:
        yield served, db
    finally:
        served.stop()


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return [
            *conn.execute("SELECT * FROM volume_processing ORDER BY id"),
            *conn.execute("SELECT * FROM downloads ORDER BY id"),
        ]


def test_api_status_counts_failures_and_missing_fields(dashboard: tuple[Served, Path]) -> None:
    served, db = dashboard
    status, data = served.json("/api/status")
    assert status == 200 and data["errors"] == []
    assert data["generated_at"].endswith("Z")
    [database] = data["databases"]
    assert database["path"] == str(db)
    radars = {r["radar"]: r for r in database["radars"]}
    assert radars["RMA1"]["files_downloaded"] == 6
    assert radars["RMA1"]["volumes"] == {
        "pending": 1, "processing": 0, "completed": 0, "failed": 1, "expired": 0,
    }  # fmt: skip
    assert radars["RMA5"]["files_downloaded"] == 2
    assert radars["RMA5"]["volumes"]["completed"] == 1
    assert radars["RMA1"]["last_download"].endswith("Z")
    [failure] = database["failures"]
    assert failure["volume_id"] == FAILED_ID and failure["file"] == FAILED_FILE
    assert failure["error_message"] == HOSTILE_ERROR  # JSON carries the text as it is
    [waiting] = database["incomplete"]
    assert waiting["volume_id"] == WAITING_ID and waiting["missing_fields"] == "PHIDP,RHOHV"
    [download] = database["download_failures"]
    assert (
        download["filename"] == DOWNLOAD_FAILED and download["last_error"] == HOSTILE_DOWNLOAD_ERROR
    )
    # the query string is ignored; the same view as `radarlib status --json`
    status, again = served.json("/api/status?radar=RMA1")
    assert status == 200 and again["signature"] == data["signature"]
    for snap in (data, again):  # ages tick between two requests; nothing else differs
        for entry in snap["databases"][0]["live"].values():
            assert entry.pop("age_seconds") > 0
    assert again["databases"] == data["databases"]
    live = data["databases"][0]["live"]
    assert live["RMA5"]["newest_observation"] == "2025-11-18T12:35:00Z"
    assert live["RMA5"]["quicklook_volume"] == DONE_ID
    assert live["RMA1"]["timeline"] == []  # nothing in the last 24 h


def test_page_shows_everything_escaped(dashboard: tuple[Served, Path]) -> None:
    served, db = dashboard
    status, headers, body = served.get("/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    page = body.decode("utf-8")
    assert str(db) in page and "snapshot at" in page
    for text in (WAITING_ID, "PHIDP,RHOHV", FAILED_ID, FAILED_FILE, DOWNLOAD_FAILED, "RMA5"):
        assert text in page
    # hostile text from the database is escaped, never markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot; &#x27;x&#x27;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<script>alert" not in page and "<img src=x" not in page
    # the only script is ours, allowed by a per-response nonce in the CSP
    scripts = re.findall(r"<script([^>]*)>", page)
    assert len(scripts) == 1
    nonce = re.search(r'nonce="([^"]+)"', scripts[0])
    assert nonce is not None
    assert f"script-src 'nonce-{nonce.group(1)}'" in headers["Content-Security-Policy"]
    assert "http://" not in page.replace(served.url, "") and "https://" not in page  # no assets
    # overview row of RMA1: files, last download, then pending processing completed failed expired
    row = re.search(r"<tr><td>RMA1</td>(.*?)</tr>", page)
    assert row is not None
    numbers = re.findall(r'<td class="n[^"]*">(\d+)</td>', row.group(1))
    assert numbers == ["6", "1", "0", "0", "1", "0"]
    # HEAD: same headers, no body (read off the socket: http clients drop a HEAD body)
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        raw.sendall(b"HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b"".join(iter(lambda: raw.recv(65536), b""))
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and rest == b""
    length = re.search(rb"Content-Length: (\d+)", head)
    assert length is not None and int(length.group(1)) > 1000


def test_health_routes_methods_and_clean_stop(dashboard: tuple[Served, Path]) -> None:
    served, db = dashboard
    before = rows(db)
    status, report = served.json("/healthz")
    assert status == 200 and report["status"] == "ok" and report["reasons"] == []
    [entry] = report["databases"]
    assert entry["ok"] and entry["newest_download"] and 0 <= entry["age_seconds"] < 3600
    for path in ("/nope", "/api", "/healthz/x", "/index.html"):
        assert served.get(path)[0] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"):
        status, headers, _ = served.get("/", method=method)
        assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert served.get("/healthz", method="HEAD")[0] == 200
    # read-only, and no connection kept open between requests
    assert rows(db) == before
    held = [f.path for f in psutil.Process(served.proc.pid).open_files()]
    assert not [p for p in held if p.startswith(str(db))], held
    assert served.stop(signal.SIGTERM) == 0
    assert "Traceback" not in served.stderr.read_text()


def test_sigint_stops_with_exit_code_zero(tmp_path: Path) -> None:
    served = serve(tmp_path, "--db", str(build_db(tmp_path / "state.db")))
    assert served.get("/healthz")[0] == 200
    assert served.stop(signal.SIGINT) == 0


def test_healthz_fails_for_missing_corrupt_and_stale_databases(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "state.db"
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite at all" * 40)
    empty = tmp_path / "empty.db"
    empty.touch()
    stale = build_db(
        tmp_path / "stale.db", downloaded_at=datetime.now(timezone.utc) - timedelta(days=2)
    )
    fresh = build_db(tmp_path / "fresh.db")
    cases = {
        missing: "no state database",
        corrupt: "not a SQLite database",
        empty: "empty file",
        stale: "old (limit 3600 s)",
    }
    for db, reason in cases.items():
        served = serve(tmp_path, "--db", str(db), "--max-download-age", "3600")
        try:
            status, report = served.json("/healthz")
            assert status == 503, db
            assert report["status"] == "unhealthy"
            [text] = report["reasons"]
            assert reason in text and str(db) in text
            # the page and the API still answer, naming the problem
            status, data = served.json("/api/status")
            if db == stale:
                assert status == 200 and data["errors"] == []
            else:
                assert status == 200 and reason in data["errors"][0]["error"]
                status, _, page = served.get("/")
                assert status == 200 and b"cannot read" in page
        finally:
            assert served.stop() == 0
    assert not missing.exists() and not missing.parent.exists()  # never created
    assert empty.stat().st_size == 0  # never initialised
    # one bad database among good ones makes the check fail; without an age limit, stale is fine
    served = serve(tmp_path, "--db", str(fresh), "--db", str(stale), "--max-download-age", "3600")
    try:
        status, report = served.json("/healthz")
        assert status == 503 and len(report["reasons"]) == 1 and str(stale) in report["reasons"][0]
    finally:
        served.stop()
    served = serve(tmp_path, "--db", str(fresh), "--db", str(stale))
    try:
        assert served.json("/healthz")[0] == 200
    finally:
        served.stop()


def test_config_targets_and_no_secrets(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    build_db(root / "state.db")
    config = tmp_path / "radarlib.toml"  # outside any git work tree: a literal password is allowed
    config.write_text(
        f"""
[paths]
root = "{root}"
[sources.main]
host = "ftp.secret-host.example"
username = "radar-user"
password = "{PASSWORD}"
[[radars]]
code = "RMA1"
start_date = 2025-11-18
[[radars]]
code = "RMA5"
start_date = 2025-11-18
[health]
max_age_minutes = 45
"""
    )
    served = serve(tmp_path, "--config", str(config), env={"RADARLIB_FTP_PASSWORD": PASSWORD})
    try:
        bodies = [served.get(path)[2] for path in ("/", "/api/status", "/healthz", "/nope")]
        health = json.loads(bodies[2])  # [health] of the config, over its radars (just written)
        assert health["status"] == "ok" and health["max_age_minutes"] == 45
        assert [r["radar"] for r in health["databases"][0]["radars"]] == ["RMA1", "RMA5"]
        status, data = served.json("/api/status")
        assert status == 200
        assert [r["radar"] for r in data["databases"][0]["radars"]] == ["RMA1", "RMA5"]
        assert data["databases"][0]["path"] == str(root / "state.db")
    finally:
        assert served.stop() == 0
    assert FAILED_FILE.encode() in bodies[0]
    shown = b"".join(bodies).decode() + served.stderr.read_text()
    for secret in (PASSWORD, "secret-host", "radar-user"):
        assert secret not in shown


def test_bad_config_and_taken_port_exit_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADARLIB_")}
    result = subprocess.run(
        [sys.executable, "-m", "radarlib", "dashboard", "--config", str(tmp_path / "none.toml")],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 2 and "config file not found" in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "radarlib", "dashboard", "--db", "x.db", "--port", str(port)],
            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_healthz_names_each_stale_or_silent_radar(tmp_path: Path) -> None:
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    db = build_db(tmp_path / "state.db", downloaded_at=two_hours_ago)
    args = ("--db", str(db), "--radar", "RMA1", "--radar", "RMA5", "--radar", "RMA9")
    served = serve(tmp_path, *args, "--max-age", "15")
    try:
        status, report = served.json("/healthz")
        assert status == 503
        reasons = report["reasons"]
        assert len(reasons) == 3
        assert reasons[0] == "RMA1: newest file downloaded 120 min ago (limit 15 min)"
        assert reasons[1] == "RMA5: newest file downloaded 120 min ago (limit 15 min)"
        assert reasons[2] == "RMA9: has never downloaded anything"
        by_radar = {r["radar"]: r for r in report["databases"][0]["radars"]}
        assert by_radar["RMA1"]["age_minutes"] == pytest.approx(120, abs=1)
        assert not by_radar["RMA1"]["healthy"] and by_radar["RMA1"]["last_download"]
        assert report["max_age_minutes"] == 15
    finally:
        assert served.stop() == 0
    lenient = serve(tmp_path, "--db", str(db), "--max-age", "180")
    try:
        status, report = lenient.json("/healthz")
        radars = report["databases"][0]["radars"]
        assert status == 200 and [r["healthy"] for r in radars] == [True, True]
    finally:
        assert lenient.stop() == 0


def test_token_is_required_off_loopback_and_checked_when_set(tmp_path: Path) -> None:
    db = build_db(tmp_path / "state.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADARLIB_")}
    refused = subprocess.run(
        [sys.executable, "-m", "radarlib", "dashboard", "--db", str(db), "--host", "0.0.0.0",
         "--port", "0"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert refused.returncode == 2 and "$RADARLIB_DASHBOARD_TOKEN" in refused.stderr
    token = "t0ken-from-the-environment"
    served = serve(tmp_path, "--db", str(db), env={"RADARLIB_DASHBOARD_TOKEN": token})
    try:
        for path in ("/", "/api/status", "/metrics", "/quicklook/RMA5.png"):
            status, headers, _ = served.get(path)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
        assert served.get("/?token=wrong")[0] == 401
        assert served.get("/healthz")[0] == 200  # for load balancers and monitors
        status, _, page = served.get(f"/?token={token}")
        assert status == 200 and b"RMA5" in page
        request = urllib.request.Request(
            served.url + "api/status", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["databases"][0]["radars"]
        assert token not in served.stderr.read_text()
    finally:
        assert served.stop() == 0
