"""Notifications against a real local HTTP server (http.server in a thread) and a real local SMTP
server (aiosmtpd with STARTTLS on a self-signed certificate made with ``cryptography``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ftpserver import FTPServerThread
from radarlib.config import parse_config
from radarlib.errors import ConfigError
from radarlib.monitor import Monitor
from radarlib.notify import SIGNATURE_HEADER, Event, Notifier
from radarlib.operations import watcher
from radarlib.ops_config import EmailSettings, NotificationSettings, WebhookSettings
from radarlib.pipeline.supervisor import Pipeline, run_pipeline
from radarlib.state.sqlite import SQLiteStateTracker

UTC = dt.timezone.utc


class Receiver:
    """A webhook receiver: records every POST; answers ``fail_first`` requests with 500."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                time.sleep(receiver.delay)
                failing = len(receiver.requests) <= receiver.fail_first
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def settings(*hooks: WebhookSettings, **kw: Any) -> NotificationSettings:
    return NotificationSettings(webhooks=hooks, **kw)


def test_webhook_is_signed_json(receiver: Receiver) -> None:
    hook = WebhookSettings(url=receiver.url, secret_env="HOOK_KEY")
    notifier = Notifier(settings(hook), env={"HOOK_KEY": "s3cret"})
    event = Event("volume_failed", "RMA1", "volume RMA1_… failed", {"error": "VolumeError"})
    assert notifier.notify(event)
    assert notifier.flush(10)
    [request] = receiver.requests
    payload = json.loads(request["body"])
    assert payload["event"] == "volume_failed" and payload["radar"] == "RMA1"
    assert payload["details"] == {"error": "VolumeError"}
    expected = hmac.new(b"s3cret", request["body"], hashlib.sha256).hexdigest()
    assert request["headers"][SIGNATURE_HEADER] == f"sha256={expected}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert notifier.sent == 1 and notifier.failed == 0
    notifier.close()


def test_webhook_retries_with_backoff_then_succeeds() -> None:
    receiver = Receiver(fail_first=2)
    try:
        hook = WebhookSettings(url=receiver.url, backoff_seconds=0.2, max_attempts=4)
        notifier = Notifier(settings(hook))
        started = time.monotonic()
        notifier.notify(Event("daemon_error", "RMA1", "x"))
        assert notifier.flush(20)
        elapsed = time.monotonic() - started
        assert len(receiver.requests) == 3 and notifier.sent == 1
        assert elapsed >= 0.2 + 0.4  # two pauses, doubling
    finally:
        receiver.close()


def test_failing_destinations_never_raise_nor_block() -> None:
    slow = Receiver(delay=3.0)
    try:
        hooks = (
            WebhookSettings(url=slow.url, timeout_seconds=0.5, max_attempts=2, backoff_seconds=0),
            WebhookSettings(url="http://127.0.0.1:9/refused", max_attempts=1),
        )
        notifier = Notifier(settings(*hooks, min_interval_seconds=0))
        started = time.monotonic()
        for i in range(3):
            assert notifier.notify(Event("volume_failed", "RMA1", f"v{i}"))
        assert time.monotonic() - started < 0.5  # notify() only queues
        assert notifier.flush(30)
        assert notifier.failed == 6 and notifier.sent == 0
        assert len(slow.requests) == 6  # each attempt timed out, then was retried once
    finally:
        slow.close()


def test_rate_limits(receiver: Receiver) -> None:
    clock = [1000.0]
    notifier = Notifier(
        settings(WebhookSettings(url=receiver.url), min_interval_seconds=60, max_per_hour=3),
        clock=lambda: clock[0],
    )
    assert notifier.notify(Event("volume_failed", "RMA1", "a"))
    assert not notifier.notify(Event("volume_failed", "RMA1", "b"))  # same key, too soon
    assert notifier.notify(Event("volume_failed", "RMA2", "c"))
    clock[0] += 61
    assert notifier.notify(Event("volume_failed", "RMA1", "d"))
    assert not notifier.notify(Event("radar_silent", "RMA3", "e"))  # 3 an hour
    clock[0] += 3600
    assert notifier.notify(Event("radar_silent", "RMA3", "f"))
    assert notifier.flush(10)
    assert [e["summary"] for e in receiver.events()] == ["a", "c", "d", "f"]
    assert notifier.dropped == 2


def test_missing_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        Notifier(settings(WebhookSettings(url="http://x/", secret_env="NOPE")), env={})
    assert "NOPE" in str(err.value)


# ---------------------------------------------------------------------- SMTP


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.pem", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "message": message_from_bytes(envelope.content),
                "tls": session.ssl is not None,
                "login": getattr(session, "login_data", None),
            }
        )
        return "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and data.login == b"radar" and data.password == b"pw"
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


def test_email_with_starttls_and_login(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd's start() cannot use port 0)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        server_hostname="localhost",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        mail = EmailSettings(
            host="localhost",
            port=port,
            sender="radarlib@example.org",
            recipients=("ops@example.org",),
            username="radar",
            password_env="SMTP_PW",
            tls_ca_file=cert,
            timeout_seconds=10,
        )
        notifier = Notifier(NotificationSettings(email=mail), env={"SMTP_PW": "pw"})
        notifier.notify(Event("radar_silent", "RMA5", "RMA5 silent for 45 min", {"x": 1}))
        assert notifier.flush(20)
        assert notifier.sent == 1, notifier.failed
        [got] = inbox.messages
        assert got["tls"] and got["to"] == ["ops@example.org"]
        assert got["message"]["Subject"] == "[radarlib] RMA5 radar_silent: RMA5 silent for 45 min"
        assert "radar: RMA5" in got["message"].get_payload()

        # a wrong password: logged as failed, nothing raised, nothing delivered
        bad = Notifier(NotificationSettings(email=mail), env={"SMTP_PW": "wrong"})
        bad.notify(Event("radar_silent", "RMA5", "again"))
        assert bad.flush(20) and bad.failed == 1 and len(inbox.messages) == 1
        # a client that does not trust the certificate refuses to send
        untrusted = Notifier(
            NotificationSettings(email=EmailSettings(**{**mail.__dict__, "tls_ca_file": None})),
            env={"SMTP_PW": "pw"},
        )
        untrusted.notify(Event("radar_silent", "RMA5", "again"))
        assert untrusted.flush(20) and untrusted.failed == 1 and len(inbox.messages) == 1
    finally:
        controller.stop()


# ---------------------------------------------------------------------- monitor


def test_monitor_dedupes_silence_and_announces_recovery_and_failures(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    start = dt.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    clock = [start]
    tracker = SQLiteStateTracker(db, clock=lambda: clock[0])
    name = "RMA1_0315_02_VRAD_20260101T115500Z.BUFR"
    tracker.mark_downloaded(name, "/L2/x", str(tmp_path / name), 10, None,
                            expected_fields=["VRAD"])  # fmt: skip
    config = NotificationSettings(silent_minutes=30, on_volume_completed=True)
    monitor = Monitor(config, [(db, ["RMA1", "RMA2"])], now=start)

    def kinds(minutes: float) -> list[tuple[str, str | None]]:
        clock[0] = start + dt.timedelta(minutes=minutes)
        return [(e.kind, e.radar) for e in monitor.check(now=clock[0])]

    assert kinds(1) == []
    assert kinds(31) == [("radar_silent", "RMA1"), ("radar_silent", "RMA2")]
    assert kinds(50) == []  # once, until it recovers
    [vol] = tracker.claim_volumes("w", 1, now=clock[0])
    tracker.fail_volume(vol["volume_id"], "w", "VolumeError: truncated", retry_at=None)
    tracker.mark_downloaded("RMA1_0315_02_VRAD_20260101T125000Z.BUFR", "/L2/y", None, 10,
                            None, expected_fields=["VRAD"])  # fmt: skip
    events = monitor.check(now=clock[0])
    assert [(e.kind, e.radar) for e in events] == [
        ("volume_failed", "RMA1"),
        ("radar_recovered", "RMA1"),
    ]
    assert "truncated" in events[0].summary
    assert kinds(52) == []
    tracker.close()


def test_daemon_stopped_by_an_error_is_announced_by_radarlib_run(
    ftp_server: FTPServerThread, tmp_path: Path, receiver: Receiver
) -> None:
    """A real pipeline whose download daemon dies (wrong FTP password) -> one webhook."""
    config = parse_config(
        {
            "sources": {
                "main": {
                    "host": "127.0.0.1",
                    "port": ftp_server.port,
                    "username": "radar",
                    "password_env": "FTP_PW",
                    "connect_timeout": 2.0,
                }
            },
            "radars": [{"code": "RMA11", "start_date": "2025-10-20T00:00:00Z"}],
            "paths": {"root": str(tmp_path)},
            "download": {"max_attempts": 1, "poll_interval": 0.2},
            "notifications": {
                "webhooks": [{"url": receiver.url, "max_attempts": 2, "backoff_seconds": 0.1}],
                "check_interval_seconds": 0.2,
            },
        },
        env={"FTP_PW": "wrong password"},
    )
    pipeline = Pipeline(config, roles=("download",))
    code = asyncio.run(asyncio.wait_for(run_pipeline(pipeline, watcher=watcher(config)), 60))
    assert code == 1
    daemon_events = [e for e in receiver.events() if e["event"] == "daemon_error"]
    assert len(daemon_events) == 1
    assert daemon_events[0]["radar"] == "RMA11"
    assert daemon_events[0]["details"]["daemon"] == "RMA11/download"
    assert "wrong password" not in json.dumps(receiver.events())  # no secret leaks
