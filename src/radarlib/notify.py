"""Notifications: webhooks (signed JSON POST) and e-mail (SMTP + STARTTLS), rate-limited.

>>> notifier = Notifier(config.operations.notifications)          # doctest: +SKIP
>>> notifier.notify(Event("volume_failed", "RMA1", "volume … failed", {"error": "…"}))
True

:meth:`Notifier.notify` never blocks and never raises: it applies the rate limits and hands the
event to a background thread, which delivers it to every destination whose ``events`` list
has it. A webhook is retried with exponential backoff (network errors, HTTP 5xx and 429), each
attempt bounded by its timeout; a delivery that still fails is logged and dropped, so a
notification failure never stops the pipeline. Secrets come from the environment: the HMAC
key of a webhook (``secret_env``; the ``X-Radarlib-Signature: sha256=<hex>`` header is the
HMAC-SHA256 of the exact body) and the SMTP password (``password_env``); neither is logged.

Rate limits: the same (event, radar) at most once per ``min_interval_seconds``, and at most
``max_per_hour`` events in all; dropped events are counted in :attr:`Notifier.dropped`.
De-duplication of states (one "radar silent" until it recovers) is :mod:`radarlib.monitor`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import EmailMessage
from typing import Any

from radarlib import __version__
from radarlib.errors import ConfigError
from radarlib.filename import format_iso
from radarlib.ops_config import EmailSettings, NotificationSettings, WebhookSettings

__all__ = ["Event", "Notifier", "send_email", "send_webhook", "sign"]

log = logging.getLogger("radarlib.notify")

SIGNATURE_HEADER = "X-Radarlib-Signature"


@dataclass(frozen=True)
class Event:
    """Something worth telling an operator about."""

    kind: str
    radar: str | None
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: format_iso(datetime.now(timezone.utc)))

    def payload(self) -> dict[str, Any]:
        """The JSON body of a webhook."""
        return {
            "event": self.kind,
            "radar": self.radar,
            "summary": self.summary,
            "details": dict(self.details),
            "at": self.at,
            "source": f"radarlib {__version__}",
        }


def sign(secret: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``body`` with ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class _Retryable(Exception):
    pass


def send_webhook(
    hook: WebhookSettings,
    event: Event,
    env: Mapping[str, str],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """POST ``event`` as JSON to ``hook.url`` with retries; the final HTTP status (blocking).

    Raises:
        OSError: every attempt failed (the last error); HTTP 4xx other than 429 is not retried.
    """
    body = json.dumps(event.payload(), sort_keys=True).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"radarlib/{__version__}",
        "X-Radarlib-Event": event.kind,
    }
    if hook.secret_env:
        headers[SIGNATURE_HEADER] = sign(env[hook.secret_env], body)
    last: Exception | None = None
    for attempt in range(1, hook.max_attempts + 1):
        request = urllib.request.Request(hook.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout_seconds) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            last = exc
            if exc.code < 500 and exc.code != 429:
                raise OSError(f"{hook.url}: HTTP {exc.code} {exc.reason}") from None
        except (OSError, ValueError) as exc:  # refused, timeout, DNS, TLS
            last = exc
        if attempt < hook.max_attempts:
            sleep(hook.backoff_seconds * 2 ** (attempt - 1))
    raise OSError(f"{hook.url}: {hook.max_attempts} attempts failed; last: {last}")


def send_email(mail: EmailSettings, event: Event, env: Mapping[str, str]) -> None:
    """Send ``event`` by SMTP (STARTTLS unless ``starttls = false``), blocking."""
    message = EmailMessage()
    radar = f" {event.radar}" if event.radar else ""
    message["Subject"] = f"[radarlib]{radar} {event.kind}: {event.summary}"[:200]
    message["From"] = mail.sender
    message["To"] = ", ".join(mail.recipients)
    lines = [event.summary, "", f"event: {event.kind}", f"radar: {event.radar or '-'}"]
    lines += [f"at: {event.at}"] + [f"{k}: {v}" for k, v in event.details.items()]
    message.set_content("\n".join(lines) + "\n")
    with smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout_seconds) as smtp:
        smtp.ehlo()
        if mail.starttls:
            cafile = None if mail.tls_ca_file is None else str(mail.tls_ca_file)
            smtp.starttls(context=ssl.create_default_context(cafile=cafile))
            smtp.ehlo()
        if mail.username:
            smtp.login(mail.username, env[mail.password_env])
        smtp.send_message(message)


class Notifier:
    """Rate-limits events and delivers them from a background thread (see the module doc).

    Raises:
        ConfigError: a webhook's ``secret_env`` or the SMTP ``password_env`` is not set.
    """

    def __init__(
        self,
        settings: NotificationSettings,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._env = dict(os.environ if env is None else env)
        for index, hook in enumerate(settings.webhooks):
            if hook.secret_env and hook.secret_env not in self._env:
                raise ConfigError(
                    f"notifications.webhooks[{index}].secret_env",
                    f"environment variable {hook.secret_env} is not set",
                )
        mail = settings.email
        if mail is not None and mail.username and mail.password_env not in self._env:
            raise ConfigError(
                "notifications.email.password_env",
                f"environment variable {mail.password_env} is not set (SMTP user {mail.username})",
            )
        self._clock = clock
        self._last: dict[tuple[str, str | None], float] = {}
        self._sent_times: deque[float] = deque()
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def _allowed(self, event: Event) -> bool:
        now = self._clock()
        key = (event.kind, event.radar)
        last = self._last.get(key)
        if last is not None and now - last < self.settings.min_interval_seconds:
            return False
        while self._sent_times and now - self._sent_times[0] >= 3600:
            self._sent_times.popleft()
        if len(self._sent_times) >= self.settings.max_per_hour:
            return False
        self._last[key] = now
        self._sent_times.append(now)
        return True

    def notify(self, event: Event) -> bool:
        """Queue ``event`` for delivery; False when a rate limit dropped it. Never blocks."""
        if not self.settings.active:
            return False
        with self._lock:
            if not self._allowed(event):
                self.dropped += 1
                log.info("notification %s for %s rate-limited", event.kind, event.radar or "-")
                return False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._deliver_forever, name="radarlib-notify", daemon=True
                )
                self._thread.start()
        self._queue.put(event)
        return True

    def _deliver_forever(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self.deliver(event)
            finally:
                self._queue.task_done()

    def deliver(self, event: Event) -> None:
        """Send one event to every destination now (blocking; errors are logged, not raised)."""
        targets: list[tuple[str, Callable[[], object]]] = [
            (hook.url, lambda hook=hook: send_webhook(hook, event, self._env))  # type: ignore[misc]
            for hook in self.settings.webhooks
            if event.kind in hook.events
        ]
        mail = self.settings.email
        if mail is not None and event.kind in mail.events:
            targets.append(
                (f"smtp://{mail.host}:{mail.port}", lambda: send_email(mail, event, self._env))
            )
        for where, send in targets:
            try:
                send()
            except Exception as exc:  # never let a destination stop anything
                self.failed += 1
                log.error("notification %s to %s failed: %s", event.kind, where, exc)
            else:
                self.sent += 1
                log.info("notification %s sent to %s", event.kind, where)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event was handled; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what is queued (up to ``timeout``) and stop the thread."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None
