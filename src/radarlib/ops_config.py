"""The operations tables of the TOML config: ``[retention]``, ``[notifications]``, ``[metrics]``
and ``[dashboard]``, validated into small frozen dataclasses (``[health]`` is
:class:`radarlib.config.HealthSettings`).

They are parsed by :func:`parse_operations` from :func:`radarlib.config.parse_config` and live
in :attr:`radarlib.config.Config.operations`; every table is optional and its absence means
"off" (no retention, no notifications, no metrics listener) except where a default is safe.
Secrets (webhook HMAC keys, SMTP password, dashboard token) are named by environment variable,
never written in the file. Key reference: ``docs/configuration.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radarlib.checks import type_name
from radarlib.config import (
    _ENV_NAME,
    _RADAR_CODE,
    _base_path,
    _bool,
    _int,
    _number,
    _Problems,
    _read_table,
    _table,
    _template,
    _text,
)
from radarlib.errors import ConfigError

__all__ = [
    "EVENTS",
    "KINDS",
    "DashboardOptions",
    "EmailSettings",
    "KeepRule",
    "MetricsSettings",
    "NotificationSettings",
    "OperationsSettings",
    "RetentionSettings",
    "WebhookSettings",
    "parse_operations",
]

#: What retention manages, per radar.
KINDS = ("bufr", "netcdf", "products")
#: What notifications are sent about.
EVENTS = (
    "volume_completed",
    "volume_failed",
    "radar_silent",
    "radar_recovered",
    "daemon_error",
    "disk_budget",
)
_LISTEN = re.compile(r"(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})")


@dataclass(frozen=True)
class KeepRule:
    """How much of one kind of file to keep: by age, by disk budget (oldest go first), or both."""

    keep_days: float | None = None
    max_gb: float | None = None

    @property
    def active(self) -> bool:
        """Whether this rule deletes anything at all."""
        return self.keep_days is not None or self.max_gb is not None


@dataclass(frozen=True)
class RetentionSettings:
    """``[retention]``: rules per kind, per-radar overrides, pace inside ``radarlib run``."""

    rules: dict[str, KeepRule] = field(default_factory=dict)
    radars: dict[str, dict[str, KeepRule]] = field(default_factory=dict)
    interval_minutes: float = 60.0
    max_deletes_per_second: float = 0.0
    products_dir: str = "{root}/{radar}/products"

    def rule(self, radar: str, kind: str) -> KeepRule:
        """The rule of ``kind`` for ``radar``: its own override, else the default, else none."""
        own = self.radars.get(radar, {})
        return own.get(kind) or self.rules.get(kind) or KeepRule()

    @property
    def active(self) -> bool:
        """Whether any rule deletes anything."""
        rules = [*self.rules.values(), *(r for o in self.radars.values() for r in o.values())]
        return any(rule.active for rule in rules)


@dataclass(frozen=True)
class WebhookSettings:
    """One webhook: JSON POST to ``url``, signed with the key in ``secret_env`` if given."""

    url: str
    secret_env: str | None = None
    timeout_seconds: float = 10.0
    max_attempts: int = 4
    backoff_seconds: float = 2.0
    events: tuple[str, ...] = EVENTS


@dataclass(frozen=True)
class EmailSettings:
    """SMTP delivery; the password comes from ``password_env``."""

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password_env: str = "RADARLIB_SMTP_PASSWORD"
    tls_ca_file: Path | None = None
    timeout_seconds: float = 20.0
    events: tuple[str, ...] = EVENTS


@dataclass(frozen=True)
class NotificationSettings:
    """``[notifications]``: which events, thresholds, rate limits, and where they go."""

    webhooks: tuple[WebhookSettings, ...] = ()
    email: EmailSettings | None = None
    on_volume_completed: bool = False
    on_volume_failed: bool = True
    on_daemon_error: bool = True
    silent_minutes: float = 30.0
    disk_budget_percent: float = 90.0
    min_interval_seconds: float = 300.0
    max_per_hour: int = 60
    check_interval_seconds: float = 60.0

    @property
    def active(self) -> bool:
        """Whether any destination is configured."""
        return bool(self.webhooks) or self.email is not None


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: an optional ``/metrics`` listener inside ``radarlib run``."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True)
class DashboardOptions:
    """``[dashboard]``: the variable holding the access token (needed off loopback)."""

    token_env: str = "RADARLIB_DASHBOARD_TOKEN"


@dataclass(frozen=True)
class OperationsSettings:
    """Every operations table of one config."""

    retention: RetentionSettings = field(default_factory=RetentionSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    dashboard: DashboardOptions = field(default_factory=DashboardOptions)


# --------------------------------------------------------------------------- validators


def _env_name(key: str, value: Any) -> str:
    text = _text(key, value)
    if not _ENV_NAME.fullmatch(text):
        raise ConfigError(key, f"{text!r} is not an environment variable name")
    return text


def _events(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(key, f"must be a non-empty list of events, not {value!r}")
    for item in value:
        if item not in EVENTS:
            raise ConfigError(key, f"unknown event {item!r}; known: {', '.join(EVENTS)}")
    return tuple(value)


def _url(key: str, value: Any) -> str:
    text = _text(key, value)
    if not re.fullmatch(r"https?://\S+", text):
        raise ConfigError(key, f"{text!r} is not an http:// or https:// URL")
    return text


def _addresses(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(key, f"must be a non-empty list of addresses, not {value!r}")
    for item in value:
        if not isinstance(item, str) or "@" not in item:
            raise ConfigError(key, f"{item!r} is not an e-mail address")
    return tuple(value)


def _listen(key: str, value: Any) -> tuple[str, int]:
    text = _text(key, value)
    match = _LISTEN.fullmatch(text)
    if match is None or not 0 <= int(match["port"]) <= 65535:
        raise ConfigError(key, f"{text!r} is not host:port such as 127.0.0.1:9108")
    return match["host"].strip("[]"), int(match["port"])


_RULE_KEYS = {"keep_days": _number(positive=True), "max_gb": _number(positive=True)}


def _rules(prefix: str, data: Mapping[str, Any]) -> dict[str, KeepRule]:
    rules: dict[str, KeepRule] = {}
    for kind in KINDS:
        if kind in data:
            key = f"{prefix}.{kind}"
            values = _read_table(key, _table(key, data[kind]), _RULE_KEYS)
            rules[kind] = KeepRule(values.get("keep_days"), values.get("max_gb"))
    return rules


def _parse_retention(data: Mapping[str, Any]) -> RetentionSettings:
    schema = {
        **dict.fromkeys(KINDS, lambda _k, v: v),
        "radars": lambda _k, v: v,
        "interval_minutes": _number(0.0),
        "max_deletes_per_second": _number(0.0),
        "products_dir": _template,
    }
    values = _read_table("retention", data, schema)
    radars: dict[str, dict[str, KeepRule]] = {}
    for code, table in _table("retention.radars", values.get("radars", {})).items():
        prefix = f"retention.radars.{code}"
        if not _RADAR_CODE.fullmatch(code):
            raise ConfigError(prefix, f"{code!r} is not a radar code such as RMA1")
        body = _table(prefix, table)
        _read_table(prefix, body, dict.fromkeys(KINDS, lambda _k, v: v))
        radars[code] = _rules(prefix, body)
    return RetentionSettings(
        rules=_rules("retention", values),
        radars=radars,
        interval_minutes=values.get("interval_minutes", 60.0),
        max_deletes_per_second=values.get("max_deletes_per_second", 0.0),
        products_dir=values.get("products_dir", RetentionSettings.products_dir),
    )


_DELIVERY = {"timeout_seconds": _number(positive=True), "events": _events}


def _parse_notifications(data: Mapping[str, Any], base: Path) -> NotificationSettings:
    schema = {
        "webhooks": lambda _k, v: v,
        "email": lambda _k, v: v,
        "on_volume_completed": _bool,
        "on_volume_failed": _bool,
        "on_daemon_error": _bool,
        "silent_minutes": _number(0.0),
        "disk_budget_percent": _number(0.0),
        "min_interval_seconds": _number(0.0),
        "max_per_hour": _int(1),
        "check_interval_seconds": _number(positive=True),
    }
    values = _read_table("notifications", data, schema)
    hooks = values.pop("webhooks", [])
    if not isinstance(hooks, list):
        raise ConfigError("notifications.webhooks", f"must be [[notifications.webhooks]] tables, "
                          f"not {type_name(hooks)}")  # fmt: skip
    webhooks = []
    for index, item in enumerate(hooks):
        prefix = f"notifications.webhooks[{index}]"
        hook_schema = {
            "url": _url,
            "secret_env": _env_name,
            "max_attempts": _int(1, 20),
            "backoff_seconds": _number(0.0),
            **_DELIVERY,
        }
        webhooks.append(
            WebhookSettings(
                **_read_table(prefix, _table(prefix, item), hook_schema, required=("url",))
            )
        )
    email = None
    if "email" in values:
        mail_schema = {
            "host": _text,
            "port": _int(1, 65535),
            "starttls": _bool,
            "username": _text,
            "password_env": _env_name,
            "sender": _text,
            "recipients": _addresses,
            "tls_ca_file": _text,
            **_DELIVERY,
        }
        mail = _read_table(
            "notifications.email",
            _table("notifications.email", values.pop("email")),
            mail_schema,
            required=("host", "sender", "recipients"),
        )
        if "tls_ca_file" in mail:
            ca = _base_path(mail["tls_ca_file"], base)
            if not ca.is_file():
                raise ConfigError("notifications.email.tls_ca_file", f"no such file: {ca}")
            mail["tls_ca_file"] = ca
        email = EmailSettings(**mail)
    return NotificationSettings(webhooks=tuple(webhooks), email=email, **values)


def parse_operations(data: Mapping[str, Any], base_dir: Path) -> OperationsSettings:
    """Validate the operations tables of a decoded TOML document (absent tables: defaults).

    Raises:
        ConfigError: one bad key; :class:`~radarlib.errors.ConfigErrors` for several (every
            table is checked).
    """
    problems = _Problems()
    retention = RetentionSettings()
    notifications = NotificationSettings()
    metrics = MetricsSettings()
    board = DashboardOptions()
    with problems.collect():
        retention = _parse_retention(_table("retention", data.get("retention", {})))
    with problems.collect():
        notifications = _parse_notifications(
            _table("notifications", data.get("notifications", {})), base_dir
        )
    with problems.collect():
        metrics = MetricsSettings(
            **_read_table(
                "metrics", _table("metrics", data.get("metrics", {})), {"listen": _listen}
            )
        )
    with problems.collect():
        board = DashboardOptions(
            **_read_table(
                "dashboard",
                _table("dashboard", data.get("dashboard", {})),
                {"token_env": _env_name},
            )
        )
    problems.raise_any()
    return OperationsSettings(
        retention=retention, notifications=notifications, metrics=metrics, dashboard=board
    )
