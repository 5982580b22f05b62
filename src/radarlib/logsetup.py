"""Logging for the radarlib commands: readable text or JSON lines, radar and volume on each line.

>>> setup_logging("INFO", "json", secrets=["s3cret"])            # doctest: +SKIP
>>> logging.getLogger("radarlib.demo").info("done", extra={"volume_id": "RMA1_0315_01_..."})

A line that concerns a radar or a volume carries ``radar`` and ``volume_id``: taken from the
record's extras when the caller passed them, else from the radar bound to the running task
(:func:`bind_radar`, set once per radar task pair by ``radarlib run``), else recognised in the
message itself (a volume id such as ``RMA1_0315_01_2025-11-18T12:30:00Z`` or a BUFR file name).
Every configured secret is replaced by ``***`` in the final text, tracebacks included.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Literal, TextIO

from radarlib.filename import BufrFileName, VolumeKey

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "bind_radar",
    "current_radar",
    "setup_logging",
]

_RADAR: contextvars.ContextVar[str | None] = contextvars.ContextVar("radarlib_radar", default=None)

_VOLUME_ID = re.compile(
    r"\b[A-Z]{2,5}[0-9]{1,3}_[0-9]{4}_[0-9]{1,2}_[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"T[0-9]{2}:[0-9]{2}:[0-9]{2}Z"
)
_BUFR_NAME = re.compile(
    r"\b[A-Z]{2,5}[0-9]{1,3}_[0-9]{4}_[0-9]{1,2}_[A-Z]{2,10}_[0-9]{8}T[0-9]{6}Z"
    r"\.BUFR"
)
_RADAR_PREFIX = re.compile(r"[A-Z]{2,5}[0-9]{1,3}")

# LogRecord attributes that are not caller extras
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def bind_radar(code: str | None) -> contextvars.Token[str | None]:
    """Tag every record logged from the current task (and tasks/threads it starts) with ``code``."""
    return _RADAR.set(code)


def current_radar() -> str | None:
    """The radar bound to the current context, if any."""
    return _RADAR.get()


def _identify(record: logging.LogRecord) -> tuple[str | None, str | None]:
    """The (radar, volume_id) a record concerns, from extras, context or message text."""
    volume_id = getattr(record, "volume_id", None)
    radar = getattr(record, "radar", None) or getattr(record, "radar_code", None)
    if volume_id is None:
        message = record.getMessage()
        found = _VOLUME_ID.search(message)
        if found is not None:
            volume_id = found.group(0)
        else:
            name = _BUFR_NAME.search(message)
            parsed = BufrFileName.try_parse(name.group(0)) if name else None
            if parsed is not None:
                volume_id = parsed.volume_key.volume_id
    if radar is None and volume_id is not None:
        try:
            radar = VolumeKey.from_volume_id(str(volume_id)).radar
        except ValueError:
            prefix = _RADAR_PREFIX.match(str(volume_id))
            radar = prefix.group(0) if prefix else None
    if radar is None:
        radar = _RADAR.get()
    return (None if radar is None else str(radar), None if volume_id is None else str(volume_id))


class _Redacting(logging.Formatter):
    """Base formatter that removes secrets from the final text."""

    def __init__(self, secrets: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class TextFormatter(_Redacting):
    """``2025-11-18 12:30:01 INFO  [RMA1 RMA1_0315_01_…] radarlib.x: message`` lines."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(
            secrets,
            fmt="%(asctime)s %(levelname)-7s %(tag)s%(name)s: %(message)s",
            datefmt="%Y-%m-%d %H:%M:%S",
        )

    def format(self, record: logging.LogRecord) -> str:
        radar, volume_id = _identify(record)
        parts = [p for p in (radar, volume_id) if p]
        record.tag = f"[{' '.join(parts)}] " if parts else ""
        return self.redact(super().format(record))


class JsonFormatter(_Redacting):
    """One JSON object per line: time, level, logger, message, radar, volume_id, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        radar, volume_id = _identify(record)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "radar": radar,
            "volume_id": volume_id,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and key not in {"tag", "radar_code"}:
                entry[key] = (
                    value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
                )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return self.redact(json.dumps(entry, ensure_ascii=False))


def setup_logging(
    level: str | int = "INFO",
    fmt: Literal["text", "json"] = "text",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> logging.Handler:
    """Send all logging to ``stream`` (stderr) in ``fmt``; replaces handlers a previous call set."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets))
    handler.set_name("radarlib")
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    handler.setLevel(numeric)  # loggers may be more verbose for in-process consumers
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "radarlib"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    logging.captureWarnings(True)  # warnings.warn(...) become log lines in the chosen format
    # third-party chatter stays at WARNING unless the user asked for DEBUG
    for noisy in ("aioftp", "matplotlib", "asyncio", "PIL"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if numeric <= logging.DEBUG and noisy == "aioftp" else logging.WARNING
        )
    return handler
