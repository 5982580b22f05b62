"""One TOML file for a whole deployment, validated at load into typed settings and daemon configs.

>>> config = load_config("radarlib.toml")                       # doctest: +SKIP
>>> [r.code for r in config.enabled_radars()]                   # doctest: +SKIP
['RMA1', 'RMA5']
>>> config.download_config("RMA1")                              # doctest: +SKIP
DateBasedDaemonConfig(host='ftp.example.org', ...)

Every problem is a :class:`~radarlib.errors.ConfigError` whose ``key`` is the dotted path of
the offending entry (``sources.smn.port``, ``radars[1].start_date``): unknown keys, wrong
types, out-of-range values and a missing password all fail here, before any daemon starts.
Passwords come from an environment variable (``password_env``, default
``RADARLIB_FTP_PASSWORD``) or from a literal ``password`` in a config file that lives outside
any git work tree; they are kept out of every ``repr``. The full key reference is
``docs/configuration.md``; a commented example ships as ``radarlib/examples/radarlib.toml``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import string
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Literal

from radarlib.archive import TEMPLATE_FIELDS, TIME_FIELDS, fill_static
from radarlib.checks import check_bool, check_integer, check_number, type_name
from radarlib.errors import ConfigError
from radarlib.filename import parse_iso
from radarlib.volume_types import (
    DEFAULT_VOLUME_TYPES,
    validate_volume_types,
    volume_type_warnings,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "DEFAULT_PASSWORD_ENV",
    "Config",
    "ConfigErrors",
    "FTPSource",
    "HealthSettings",
    "LoggingSettings",
    "PathSettings",
    "RadarSettings",
    "example_config_path",
    "load_config",
    "parse_config",
]

#: The environment variable a source reads its password from unless it names another.
DEFAULT_PASSWORD_ENV = "RADARLIB_FTP_PASSWORD"

_RADAR_CODE = re.compile(r"[A-Z]{2,5}[0-9]{1,3}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TEMPLATE_FIELDS = TEMPLATE_FIELDS

Validator = Callable[[str, Any], Any]


# --------------------------------------------------------------------------- value validators


def _int(minimum: int | None = None, maximum: int | None = None) -> Validator:
    return lambda key, value: check_integer(key, value, minimum, maximum)


def _number(minimum: float | None = None, *, positive: bool = False) -> Validator:
    if positive:
        return lambda key, value: check_number(key, value, minimum=0.0, strict=True)
    return lambda key, value: check_number(key, value, minimum=minimum, strict=False)


_bool: Validator = check_bool


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, not {type_name(value)} ({value!r})")
    if not value.strip():
        raise ConfigError(key, "must not be empty")
    return value


def _secret(key: str, value: Any) -> str:
    """A password: checked like text, but its value never appears in a message."""
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, not {type_name(value)} (value not shown)")
    if not value.strip():
        raise ConfigError(key, "must not be empty")
    return value


def _choice(*choices: str) -> Validator:
    def check(key: str, value: Any) -> str:
        text = _text(key, value)
        if text not in choices:
            raise ConfigError(key, f"must be one of {', '.join(choices)}; got {text!r}")
        return text

    return check


def _level(key: str, value: Any) -> str:
    text = _text(key, value).upper()
    if text not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(key, f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL; got {value!r}")
    return text


def _datetime(key: str, value: Any) -> datetime:
    """A TOML offset datetime, a date (midnight UTC) or an ISO string; never a naive time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(
                key, f"{value!r} is not a date-time such as 2025-11-17T00:00:00Z"
            ) from None
    else:
        raise ConfigError(key, f"must be a date-time such as 2025-11-17T00:00:00Z, not {value!r}")
    if moment.tzinfo is None:
        raise ConfigError(
            key,
            f"{value!s} has no time zone: write it in UTC with Z, e.g. "
            f"{moment.strftime('%Y-%m-%dT%H:%M:%S')}Z",
        )
    return parse_iso(moment.isoformat())


def _template(key: str, value: Any) -> str:
    text = _text(key, value)
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ConfigError(key, f"bad template {text!r}: {exc}") from None
    unknown = names - _TEMPLATE_FIELDS
    if key.endswith("state_db"):  # one database for all time: no dated placeholders
        unknown |= names & set(TIME_FIELDS)
    if unknown:
        allowed = "{root}, {radar}" + (
            "" if key.endswith("state_db") else ", {year}, {month}, {day}, {hour}"
        )
        raise ConfigError(key, f"unknown placeholder {{{min(unknown)}}} in {text!r}; use {allowed}")
    return text


# --------------------------------------------------------------------------- table walking


def _table(key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a table, not {type_name(value)} ({value!r})")
    return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class ConfigErrors(ConfigError):
    """Several configuration problems found in one pass; ``problems`` lists each one."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__("", f"{len(problems)} problems in the configuration:\n{lines}")


class _Problems:
    """Collects the ConfigErrors of a whole config, so that all are reported at once."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        self.errors += error.problems if isinstance(error, ConfigErrors) else [error]

    @contextlib.contextmanager
    def collect(self) -> Iterator[None]:
        """Record a ConfigError raised inside the block and carry on after it."""
        try:
            yield
        except ConfigError as exc:
            self.add(exc)

    def raise_any(self) -> None:
        """Raise the one problem found, or :class:`ConfigErrors` listing several."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(list(self.errors))


def _read_table(
    prefix: str,
    data: Mapping[str, Any],
    schema: Mapping[str, Validator],
    *,
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Validate ``data`` against ``schema``: unknown keys, missing required keys, bad values.

    Every problem of the table is reported (one :class:`ConfigErrors` for several).
    """
    problems = _Problems()
    for name in data:
        if name not in schema:
            problems.add(
                ConfigError(
                    _join(prefix, name), f"unknown key; allowed here: {', '.join(sorted(schema))}"
                )
            )
    for name in required:
        if name not in data:
            problems.add(ConfigError(_join(prefix, name), "is required"))
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name in schema:
            with problems.collect():
                values[name] = schema[name](_join(prefix, name), value)
    problems.raise_any()
    return values


def _daemon_keys_of(cls: type, elsewhere: frozenset[str]) -> tuple[str, ...]:
    """The TOML keys of a daemon config: its init fields, less those set from other tables."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in elsewhere)


def _read_daemon_table(
    prefix: str,
    data: Any,
    cls: type,
    placeholders: Mapping[str, Any],
    keys: tuple[str, ...],
    fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check a ``[download]``/``[processing]``/``[output]`` table with the daemon config itself.

    The table is given to ``cls`` (the fields set elsewhere filled with harmless
    ``placeholders``), so types, bounds, choices and the checks that join several keys are
    those of the dataclass's own ``__post_init__``, in one place. A refused key is reported
    and left out, and the rest is checked again, so every bad key of the table is reported.
    ``fields`` names the field of a key whose name differs (``formats`` -> ``output_formats``).
    """
    table = _table(prefix, data)
    to_field = dict(fields or {})
    to_key = {field_name: key for key, field_name in to_field.items()}
    problems = _Problems()
    values: dict[str, Any] = {}
    for name, value in table.items():
        if name in keys:
            values[name] = value
        else:
            problems.add(
                ConfigError(
                    _join(prefix, name), f"unknown key; allowed here: {', '.join(sorted(keys))}"
                )
            )
    refused: set[str] = set()
    while True:
        try:
            cls(**placeholders, **{to_field.get(k, k): v for k, v in values.items()})
        except ConfigError as exc:
            key = to_key.get(exc.key, exc.key)
            if key in refused:
                break  # a consequence of a key already reported (left out)
            refused.add(key)
            problems.add(ConfigError(_join(prefix, key), exc.problem))
            if key not in values:
                break  # a key this table lacks (e.g. dask_scheduler for executor = "dask")
            del values[key]
            continue
        break
    problems.raise_any()
    return values


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FTPSource:
    """One FTP server the radars publish to; the password is resolved and never shown in repr."""

    name: str
    host: str
    port: int = 21
    username: str = "anonymous"
    password: str = field(default="", repr=False)
    password_env: str = DEFAULT_PASSWORD_ENV
    remote_base_path: str = "/L2"
    use_tls: bool = False
    #: PEM bundle of the CA(s) that signed the server certificate (None: system trust store)
    tls_ca_file: Path | None = None
    #: connect/command/data timeouts in seconds; None = the download daemon's default
    timeouts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RadarSettings:
    """One radar to ingest: its code, the source serving it and the time window to fetch."""

    code: str
    source: str
    start_date: datetime
    end_date: datetime | None = None
    enabled: bool = True
    #: this radar's output formats; None = the [output] formats (default: CF/Radial only)
    output_formats: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PathSettings:
    """Where files live; ``{root}`` and ``{radar}`` are filled per radar.

    ``bufr_dir`` and ``netcdf_dir`` may also use ``{year}``, ``{month}``, ``{day}`` and
    ``{hour}`` (see :mod:`radarlib.archive`): :meth:`resolve` keeps those, and the daemons
    fill them with each volume's observation time.
    """

    root: Path
    bufr_dir: str = "{root}/{radar}/bufr"
    netcdf_dir: str = "{root}/{radar}/netcdf"
    state_db: str = "{root}/state.db"
    root_resources: Path | None = None

    def resolve(self, template: str, radar: str) -> Path:
        """The path of ``template`` for ``radar``, absolute."""
        return Path(fill_static(template, root=self.root, radar=radar)).expanduser().resolve()

    @property
    def shared_state_db(self) -> bool:
        """True when every radar records into one database (the template has no ``{radar}``)."""
        return "{radar}" not in self.state_db


@dataclass(frozen=True)
class HealthSettings:
    """When a radar counts as unhealthy (``radarlib dashboard``'s ``/healthz``)."""

    #: a radar whose newest downloaded file is older than this (or that has none) is unhealthy
    max_age_minutes: float = 30.0


@dataclass(frozen=True)
class LoggingSettings:
    """Log level and format (``text`` for people, ``json`` for log collectors)."""

    level: str = "INFO"
    format: Literal["text", "json"] = "text"


# The download, processing and output tables map 1:1 onto daemon config fields and are checked
# by those dataclasses (see _read_daemon_table); unset keys keep the daemon's own defaults, so
# there is one home for each key, its type, its bounds and its default value. The fields below
# are set from other tables (sources, radars, paths, volume_types) or are not configurable.
_DOWNLOAD_ELSEWHERE = frozenset(
    {
        "host", "port", "username", "password", "remote_base_path", "radar_code",
        "local_download_dir", "state_db", "start_date", "end_date", "volume_types", "use_tls",
        "tls_ca_file", "connect_timeout", "command_timeout", "data_timeout",
    }
)  # fmt: skip
_PROCESSING_ELSEWHERE = frozenset(
    {
        "local_bufr_dir", "local_netcdf_dir", "state_db", "volume_types", "radar_name",
        "radar_code", "root_resources", "worker_id", "compression_level", "output_formats",
        "qc",
    }
)  # fmt: skip
#: the [output] keys and the ProcessingDaemonConfig field each one sets; a radar's
#: ``output_formats`` ([[radars]]) replaces ``formats`` for that radar
_OUTPUT_FIELDS = {"compression_level": "compression_level", "formats": "output_formats"}
_OUTPUT_KEYS = tuple(_OUTPUT_FIELDS)


def _download_class() -> tuple[type, dict[str, Any], tuple[str, ...]]:
    from radarlib.pipeline.download import DateBasedDaemonConfig

    placeholders = {
        "host": "probe.invalid",
        "local_download_dir": Path("probe"),
        "state_db": Path("probe.db"),
    }
    return (
        DateBasedDaemonConfig,
        placeholders,
        _daemon_keys_of(DateBasedDaemonConfig, _DOWNLOAD_ELSEWHERE),
    )


def _processing_class() -> tuple[type, dict[str, Any], tuple[str, ...]]:
    from radarlib.pipeline.processing import ProcessingDaemonConfig

    placeholders = {
        "local_bufr_dir": Path("probe"),
        "local_netcdf_dir": Path("probe"),
        "state_db": Path("probe.db"),
        "volume_types": DEFAULT_VOLUME_TYPES,
        "radar_code": "RMA1",
    }
    return (
        ProcessingDaemonConfig,
        placeholders,
        _daemon_keys_of(ProcessingDaemonConfig, _PROCESSING_ELSEWHERE),
    )


def _formats(key: str, value: Any) -> tuple[str, ...]:
    """A list of output formats, checked where the daemon config checks its own."""
    from radarlib.export import parse_formats

    return parse_formats(value, key)


_TIMEOUT_KEYS = ("connect_timeout", "command_timeout", "data_timeout")
_SOURCE_KEYS: dict[str, Validator] = {
    "host": _text,
    "port": _int(1, 65535),
    "username": _text,
    "password": _secret,
    "password_env": _text,
    "remote_base_path": _text,
    "use_tls": _bool,
    "tls_ca_file": _text,
    **{name: _number(positive=True) for name in _TIMEOUT_KEYS},
}
_RADAR_KEYS: dict[str, Validator] = {
    "code": _text,
    "source": _text,
    "start_date": _datetime,
    "end_date": _datetime,
    "enabled": _bool,
    "output_formats": _formats,
}
_PATH_KEYS: dict[str, Validator] = {
    "root": _text,
    "bufr_dir": _template,
    "netcdf_dir": _template,
    "state_db": _template,
    "root_resources": _text,
}
_LOGGING_KEYS: dict[str, Validator] = {"level": _level, "format": _choice("text", "json")}
_HEALTH_KEYS: dict[str, Validator] = {"max_age_minutes": _number(positive=True)}


def _defaults() -> dict[str, dict[str, list[str]]]:
    """A private copy of the network's production volume types."""
    return validate_volume_types(DEFAULT_VOLUME_TYPES)


_TOP_KEYS = (
    "logging",
    "paths",
    "sources",
    "radars",
    "volume_types",
    "download",
    "processing",
    "output",
    "health",
    # operations tables, parsed by radarlib.ops_config
    "retention",
    "notifications",
    "metrics",
    "dashboard",
    # quality control and products, parsed by radarlib.qc and radarlib.products.settings
    "qc",
    "products",
)


def _default_operations() -> Any:
    from radarlib.ops_config import OperationsSettings

    return OperationsSettings()


@dataclass(frozen=True)
class Config:
    """A validated deployment: sources, radars, volume types, paths and daemon settings."""

    sources: dict[str, FTPSource]
    radars: tuple[RadarSettings, ...]
    paths: PathSettings
    volume_types: dict[str, dict[str, list[str]]] = field(default_factory=lambda: _defaults())
    download: dict[str, Any] = field(default_factory=dict)
    processing: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    #: the [qc] table (None: no quality control); radarlib.qc.qc_config_from_mapping reads it
    qc: dict[str, Any] | None = None
    #: the [products] table; radarlib.products.settings reads it
    products: dict[str, Any] = field(default_factory=dict)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    source_file: Path | None = None
    #: problems that do not stop a run but deserve a WARNING (e.g. an unknown field name)
    warnings: tuple[str, ...] = ()
    #: :class:`radarlib.ops_config.OperationsSettings` (retention, notifications, metrics...)
    operations: Any = field(default_factory=_default_operations)

    # -- radars and paths

    def enabled_radars(self) -> list[RadarSettings]:
        """The radars with ``enabled = true``, in file order."""
        return [radar for radar in self.radars if radar.enabled]

    def radar(self, code: str) -> RadarSettings:
        """The settings of one radar; :class:`ConfigError` if the file does not list it."""
        for radar in self.radars:
            if radar.code == code:
                return radar
        raise ConfigError("radars", f"no radar {code!r} in the configuration")

    def bufr_dir(self, code: str) -> Path:
        """Local folder of ``code``'s downloaded BUFR files."""
        return self.paths.resolve(self.paths.bufr_dir, code)

    def netcdf_dir(self, code: str) -> Path:
        """Local folder of ``code``'s NetCDF volumes."""
        return self.paths.resolve(self.paths.netcdf_dir, code)

    def state_db(self, code: str) -> Path:
        """The state database ``code`` records into (shared or per radar)."""
        return self.paths.resolve(self.paths.state_db, code)

    def state_dbs(self) -> list[Path]:
        """Every distinct state database of the radars in the file (enabled or not)."""
        seen: dict[Path, None] = {}
        for radar in self.radars:
            seen.setdefault(self.state_db(radar.code), None)
        return list(seen)

    def secrets(self) -> list[str]:
        """The passwords in use, for log redaction."""
        return [s.password for s in self.sources.values() if s.password and len(s.password) >= 3]

    # -- daemon configs

    def download_config(self, code: str) -> Any:
        """The :class:`~radarlib.pipeline.download.DateBasedDaemonConfig` of one radar."""
        from radarlib.pipeline.download import DateBasedDaemonConfig

        radar = self.radar(code)
        source = self.sources[radar.source]
        download_keys = _download_class()[2]
        with _daemon_keys(f"sources.{source.name}", _SOURCE_KEYS, "download", download_keys):
            return DateBasedDaemonConfig(
                host=source.host,
                port=source.port,
                username=source.username,
                password=source.password,
                remote_base_path=source.remote_base_path,
                radar_code=radar.code,
                local_download_dir=self.bufr_dir(code),
                state_db=self.state_db(code),
                start_date=radar.start_date,
                end_date=radar.end_date,
                volume_types=self.volume_types,
                use_tls=source.use_tls,
                tls_ca_file=source.tls_ca_file,
                **source.timeouts,
                **self.download,
            )

    def processing_config(self, code: str) -> Any:
        """The :class:`~radarlib.pipeline.processing.ProcessingDaemonConfig` of one radar."""
        from radarlib.pipeline.processing import ProcessingDaemonConfig

        radar = self.radar(code)
        output = {_OUTPUT_FIELDS[key]: value for key, value in self.output.items()}
        if radar.output_formats is not None:
            output["output_formats"] = radar.output_formats
        processing_keys = _processing_class()[2]
        with _daemon_keys("processing", processing_keys, "output", _OUTPUT_KEYS):
            return ProcessingDaemonConfig(
                local_bufr_dir=self.bufr_dir(code),
                local_netcdf_dir=self.netcdf_dir(code),
                state_db=self.state_db(code),
                volume_types=self.volume_types,
                radar_code=radar.code,
                root_resources=self.paths.root_resources,
                **self.processing,
                **output,
                **({"qc": self.qc_config(code).to_mapping()} if self.qc is not None else {}),
            )

    # -- quality control and products (radarlib.qc, radarlib.products)

    def qc_config(self, code: str) -> Any:
        """The :class:`~radarlib.qc.QCConfig` of one radar (``[qc]`` + ``[qc.radars.<code>]``)."""
        from radarlib.qc import QCConfig, qc_config_from_mapping

        if self.qc is None:
            return QCConfig(enabled=False)
        return qc_config_from_mapping(self.qc, self.radar(code).code)

    def product_settings(self, code: str) -> Any:
        """The :class:`~radarlib.products.settings.ProductSettings` of one radar."""
        from radarlib.products.settings import product_settings_from_mapping

        base = self.source_file.parent if self.source_file is not None else Path(".")
        return product_settings_from_mapping(self.products, self.radar(code).code, base_dir=base)

    def check_products_input(self, code: str) -> None:
        """Products read the CF/Radial file: with products on, it must be the first format."""
        if not self.product_settings(code).enabled:
            return
        radar = self.radar(code)
        formats = radar.output_formats or self.output.get("formats") or ("cfradial",)
        if formats[0] == "cfradial":
            return
        key = "output.formats"
        if radar.output_formats is not None:
            key = f"radars[{self.radars.index(radar)}].output_formats"
        raise ConfigError(
            key,
            f'products are read from the CF/Radial file: put "cfradial" first, not {list(formats)}',
        )

    def products_dir(self, code: str) -> Path:
        """Where ``code``'s products go: ``products.output_dir``, else beside its NetCDF folder."""
        settings = self.product_settings(code)
        if settings.output_dir is not None:
            return Path(settings.output_dir)
        return self.netcdf_dir(code).parent / "products"

    def product_config(self, code: str) -> Any:
        """The :class:`~radarlib.pipeline.products.ProductDaemonConfig` of one radar."""
        from radarlib.pipeline.products import ProductDaemonConfig

        return ProductDaemonConfig(
            radar_code=self.radar(code).code,
            state_db=self.state_db(code),
            output_dir=self.products_dir(code),
            settings=self.product_settings(code),
        )


@contextlib.contextmanager
def _daemon_keys(*sections: Any) -> Iterator[None]:
    """Re-raise a daemon config's ConfigError under the TOML key the value came from."""
    try:
        yield
    except ConfigError as exc:
        for prefix, keys in zip(sections[::2], sections[1::2], strict=True):
            if exc.key in keys:
                raise ConfigError(f"{prefix}.{exc.key}", exc.problem) from None
        raise


# --------------------------------------------------------------------------- loading


def _inside_git_work_tree(path: Path) -> Path | None:
    for folder in path.resolve().parents:
        if (folder / ".git").exists():
            return folder
    return None


def _parse_source(
    name: str,
    data: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    source_file: Path | None,
    base_dir: Path,
    resolve_secrets: bool = True,
) -> FTPSource:
    prefix = f"sources.{name}"
    if not _SOURCE_NAME.fullmatch(name):
        raise ConfigError(prefix, "source names use letters, digits, '_' and '-'")
    values = _read_table(prefix, _table(prefix, data), _SOURCE_KEYS, required=("host",))
    username = values.get("username", "anonymous")
    if "password" in values and "password_env" in values:
        raise ConfigError(f"{prefix}.password", "set either password or password_env, not both")
    password_env = values.get("password_env", DEFAULT_PASSWORD_ENV)
    if not _ENV_NAME.fullmatch(password_env):
        raise ConfigError(f"{prefix}.password_env", f"{password_env!r} is not a variable name")
    if "password" in values:
        repo = _inside_git_work_tree(source_file) if source_file is not None else None
        if repo is not None:
            raise ConfigError(
                f"{prefix}.password",
                f"a literal password in {source_file}, which is inside the git work tree {repo}: "
                f"move the file out of the repository or use password_env",
            )
        password = values["password"]
    elif password_env in env:
        password = env[password_env]
    elif username == "anonymous":
        password = "anonymous@"
    elif not resolve_secrets:
        password = ""
    else:
        raise ConfigError(
            f"{prefix}.password_env",
            f"environment variable {password_env} is not set "
            f"(the password of user {username!r} on {values['host']})",
        )
    ca_file = None
    if "tls_ca_file" in values:
        ca_file = _base_path(values["tls_ca_file"], base_dir)
        if not ca_file.is_file():
            raise ConfigError(f"{prefix}.tls_ca_file", f"no such file: {ca_file}")
    base = values.get("remote_base_path", "/L2")
    if not base.startswith("/"):
        raise ConfigError(f"{prefix}.remote_base_path", f"must start with '/'; got {base!r}")
    return FTPSource(
        name=name,
        host=values["host"],
        port=values.get("port", 21),
        username=username,
        password=password,
        password_env=password_env,
        remote_base_path=base.rstrip("/") or "/",
        use_tls=values.get("use_tls", False),
        tls_ca_file=ca_file,
        timeouts={k: values[k] for k in _TIMEOUT_KEYS if k in values},
    )


def _parse_radars(value: Any, sources: list[str]) -> tuple[RadarSettings, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("radars", "must be a non-empty array of tables ([[radars]])")
    radars: list[RadarSettings] = []
    problems = _Problems()
    for index, item in enumerate(value):
        with problems.collect():
            radars.append(_parse_radar(index, item, sources, radars))
    problems.raise_any()
    return tuple(radars)


def _parse_radar(
    index: int, item: Any, sources: list[str], radars: list[RadarSettings]
) -> RadarSettings:
    """One ``[[radars]]`` entry (``radars`` are the entries read before it)."""
    prefix = f"radars[{index}]"
    values = _read_table(prefix, _table(prefix, item), _RADAR_KEYS, required=("code", "start_date"))
    code = values["code"]
    if not _RADAR_CODE.fullmatch(code):
        raise ConfigError(f"{prefix}.code", f"{code!r} is not a radar code such as RMA1 or AR5")
    if any(r.code == code for r in radars):
        raise ConfigError(f"{prefix}.code", f"radar {code} is listed twice")
    if "source" in values:
        source = values["source"]
        if source not in sources:
            raise ConfigError(
                f"{prefix}.source",
                f"no source {source!r}; defined: {', '.join(sorted(sources)) or 'none'}",
            )
    elif len(sources) == 1:
        source = sources[0]
    else:
        raise ConfigError(f"{prefix}.source", "is required when several sources are defined")
    end = values.get("end_date")
    if end is not None and end <= values["start_date"]:
        raise ConfigError(f"{prefix}.end_date", "must be later than start_date")
    return RadarSettings(
        code,
        source,
        values["start_date"],
        end,
        values.get("enabled", True),
        values.get("output_formats"),
    )


def _base_path(text: str, base_dir: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def parse_config(
    data: Mapping[str, Any],
    *,
    base_dir: str | os.PathLike[str] = ".",
    env: Mapping[str, str] | None = None,
    source_file: str | os.PathLike[str] | None = None,
    resolve_secrets: bool = True,
) -> Config:
    """Validate a decoded TOML document; relative paths are taken from ``base_dir``.

    Every problem is collected before anything is raised: one :class:`ConfigError` for a
    single problem, :class:`ConfigErrors` (listing each) for several.
    ``resolve_secrets=False`` accepts a source whose password variable is unset (for commands
    that never talk to the FTP server: ``radarlib status``, ``radarlib run --only processing``).
    """
    env = os.environ if env is None else env
    base = Path(base_dir).resolve()
    origin = None if source_file is None else Path(source_file)
    problems = _Problems()
    with problems.collect():
        _read_table(
            "", data, dict.fromkeys(_TOP_KEYS, lambda _k, v: v), required=("sources", "radars")
        )

    sources: dict[str, FTPSource] = {}
    source_names: list[str] = []
    with problems.collect():
        sources_table = _table("sources", data.get("sources", {}))
        source_names = list(sources_table)
        if "sources" in data and not sources_table:
            raise ConfigError("sources", "define at least one source, e.g. [sources.main]")
        for name, value in sources_table.items():
            with problems.collect():
                sources[name] = _parse_source(
                    name,
                    _table(f"sources.{name}", value),
                    env=env,
                    source_file=origin,
                    base_dir=base,
                    resolve_secrets=resolve_secrets,
                )
    radars: tuple[RadarSettings, ...] = ()
    if "radars" in data:
        with problems.collect():
            radars = _parse_radars(data["radars"], source_names)

    paths = PathSettings(root=base)
    with problems.collect():
        path_values = _read_table("paths", _table("paths", data.get("paths", {})), _PATH_KEYS)
        resources = path_values.get("root_resources")
        paths = PathSettings(
            root=_base_path(path_values.get("root", "."), base),
            bufr_dir=path_values.get("bufr_dir", PathSettings.bufr_dir),
            netcdf_dir=path_values.get("netcdf_dir", PathSettings.netcdf_dir),
            state_db=path_values.get("state_db", PathSettings.state_db),
            root_resources=None if resources is None else _base_path(resources, base),
        )

    volume_types = _defaults()
    with problems.collect():
        if "volume_types" in data:
            volume_types = validate_volume_types(data["volume_types"])
    log_values: dict[str, Any] = {}
    with problems.collect():
        log_values = _read_table(
            "logging", _table("logging", data.get("logging", {})), _LOGGING_KEYS
        )
    health = HealthSettings()
    with problems.collect():
        health_values = _read_table(
            "health", _table("health", data.get("health", {})), _HEALTH_KEYS
        )
        health = HealthSettings(**health_values)
    tables: dict[str, dict[str, Any]] = {}
    output_class = _processing_class()
    for name, (cls, placeholders, keys) in (
        ("download", _download_class()),
        ("processing", output_class),
        ("output", (output_class[0], output_class[1], _OUTPUT_KEYS)),
    ):
        tables[name] = {}
        with problems.collect():
            tables[name] = _read_daemon_table(
                name,
                data.get(name, {}),
                cls,
                placeholders,
                keys,
                _OUTPUT_FIELDS if name == "output" else None,
            )
    from radarlib.ops_config import OperationsSettings, parse_operations

    operations = OperationsSettings()
    with problems.collect():
        operations = parse_operations(data, base)
    qc: dict[str, Any] | None = None
    products: dict[str, Any] = {}
    with problems.collect():
        qc = dict(_table("qc", data["qc"])) if "qc" in data else None
    with problems.collect():
        products = dict(_table("products", data.get("products", {})))
    config = Config(
        sources=sources,
        radars=radars,
        paths=paths,
        volume_types=volume_types,
        download=tables["download"],
        processing=tables["processing"],
        output=tables["output"],
        qc=qc,
        products=products,
        logging=LoggingSettings(
            level=log_values.get("level", "INFO"), format=log_values.get("format", "text")
        ),
        health=health,
        source_file=origin,
        warnings=tuple(volume_type_warnings(volume_types)),
        operations=operations,
    )
    # a bad [qc] / [products] value fails at load time, naming its key (once, not per radar)
    seen: set[str] = set()
    for radar in radars:
        for check in (config.qc_config, config.product_settings, config.check_products_input):
            try:
                check(radar.code)
            except ConfigError as exc:
                for problem in exc.problems if isinstance(exc, ConfigErrors) else [exc]:
                    if str(problem) not in seen:
                        seen.add(str(problem))
                        problems.add(problem)
    problems.raise_any()
    return config


def load_config(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    resolve_secrets: bool = True,
) -> Config:
    """Read and validate a TOML config file; :class:`ConfigError` naming the key on any problem."""
    file = Path(path).expanduser()
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(file), "config file not found") from None
    except OSError as exc:
        raise ConfigError(str(file), f"cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(str(file), f"not valid TOML: {exc}") from None
    return parse_config(
        data,
        base_dir=file.resolve().parent,
        env=env,
        source_file=file.resolve(),
        resolve_secrets=resolve_secrets,
    )


def example_config_path() -> Path:
    """The commented example config shipped in the package (``radarlib/examples/radarlib.toml``)."""
    return Path(__file__).resolve().parent / "examples" / "radarlib.toml"
