"""The whole pipeline on an embedded default: a local FTP server, two radars, NetCDF and a picture.

>>> report = run_demo(Path("demo-output"), volumes=3)              # doctest: +SKIP
>>> report.ok, report.quicklook                                    # doctest: +SKIP
(True, PosixPath('demo-output/quicklook_RMA11_0315_01_20251020T152828Z.png'))

Steps: write synthetic volumes of two radars (RMA1, RMA2) into a server tree with the real
layout ``/L2/<RADAR>/<YYYY>/<MM>/<DD>/<HH>/<MMSS>/``, add the real sample files when
``../shared/data/bufr`` exists (copied at run time into the output folder, never into the
repository), serve the tree with aioftp's server on 127.0.0.1 (a thread of its own, random
password handed over through an environment variable), write a ``radarlib.toml`` for it and
run the same :class:`~radarlib.pipeline.supervisor.Pipeline` as ``radarlib run`` until every
volume has an outcome, with the dashboard served on a free loopback port (its URL is
printed). Then print a table of the volumes, draw a quicklook PNG of DBZH and save a
Prometheus scrape of the dashboard's ``/metrics`` as ``metrics.txt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from radarlib.errors import ConfigError, RadarlibError
from radarlib.filename import BufrFileName, parse_iso
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

__all__ = [
    "DemoFTPServer",
    "DemoReport",
    "VolumeRow",
    "build_server_tree",
    "find_samples",
    "format_table",
    "run_demo",
]

log = logging.getLogger("radarlib.demo")

#: The synthetic radars of the demo.
DEMO_RADARS: tuple[str, ...] = ("RMA1", "RMA2")
#: Time of the first synthetic volume; later ones follow every five minutes.
DEMO_START = datetime(2025, 11, 18, 12, 30, tzinfo=timezone.utc)
#: Sweeps per synthetic volume (fewer than the real 15/5 keeps the demo quick).
DEMO_SWEEPS = {"01": 6, "02": 3}
_MARKER = ".radarlib-demo"
_PASSWORD_ENV = "RADARLIB_DEMO_FTP_PASSWORD"
_TERMINAL = ("completed", "failed", "expired")


# --------------------------------------------------------------------------- served tree


@dataclass(frozen=True)
class ServedRadar:
    """One radar in the served tree: the files it has and the time window that covers them."""

    code: str
    files: tuple[Path, ...]
    start: datetime
    end: datetime
    real: bool = False

    @property
    def volumes(self) -> set[str]:
        """The volume ids of its files."""
        return {BufrFileName.parse(p.name).volume_key.volume_id for p in self.files}


def find_samples(candidates: Iterable[Path] | None = None) -> Path | None:
    """The real sample folder ``../shared/data/bufr`` beside the repository or the cwd, if any."""
    if candidates is None:
        repo = Path(__file__).resolve().parents[2]
        candidates = (Path.cwd().parent / "shared/data/bufr", repo.parent / "shared/data/bufr")
    for folder in candidates:
        if folder.is_dir() and any(folder.rglob("*.BUFR")):
            return folder.resolve()
    return None


def _window(times: Sequence[datetime]) -> tuple[datetime, datetime]:
    first = min(times).replace(minute=0, second=0)
    return first, max(times).replace(minute=0, second=0) + timedelta(hours=1)


def build_server_tree(
    ftp_root: Path, volumes: int, samples: Path | None, *, base: str = "L2"
) -> list[ServedRadar]:
    """Fill ``ftp_root/<base>/…`` with synthetic volumes (and copies of the samples)."""
    from radarlib.bufr.synthetic import write_synthetic_volume

    served: list[ServedRadar] = []
    for seed, radar in enumerate(DEMO_RADARS):
        paths: list[Path] = []
        times: list[datetime] = []
        for k in range(volumes):
            number = "01" if k % 2 == 0 else "02"
            moment = DEMO_START + timedelta(minutes=5 * k)
            paths += write_synthetic_volume(
                ftp_root, radar, "0315", number, moment,
                layout="ftp", base=base, nsweeps=DEMO_SWEEPS[number], seed=seed,
            )  # fmt: skip
            times.append(moment)
        served.append(ServedRadar(radar, tuple(paths), *_window(times)))
    if samples is not None:
        by_radar: dict[str, list[tuple[BufrFileName, Path]]] = {}
        for path in sorted(samples.rglob("*.BUFR")):
            name = BufrFileName.try_parse(path.name)
            if name is not None:
                by_radar.setdefault(name.radar, []).append((name, path))
        for radar, entries in by_radar.items():
            copies = []
            for name, path in entries:
                folder = ftp_root / name.remote_dir(base).lstrip("/")
                folder.mkdir(parents=True, exist_ok=True)
                copies.append(Path(shutil.copyfile(path, folder / name.name)))
            served.append(
                ServedRadar(radar, tuple(copies), *_window([n.time for n, _ in entries]), real=True)
            )
    return served


def _volume_types(served: Sequence[ServedRadar]) -> dict[str, dict[str, list[str]]]:
    """The production volume types plus any other kind the served files hold (AR5's 1000/1)."""
    types = {s: {n: list(f) for n, f in v.items()} for s, v in DEFAULT_VOLUME_TYPES.items()}
    for radar in served:
        for path in radar.files:
            name = BufrFileName.parse(path.name)
            numbers = types.setdefault(name.strategy, {})
            if name.strategy not in DEFAULT_VOLUME_TYPES:
                fields = numbers.setdefault(name.volume_number, [])
                if name.field not in fields:
                    fields.append(name.field)
    return types


def _toml_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_demo_config(output: Path, port: int, user: str, served: Sequence[ServedRadar]) -> Path:
    """Write the demo's ``radarlib.toml`` (the password stays in an environment variable)."""
    lines = [
        "# Written by `radarlib demo`: the pipeline against the demo's local FTP server.",
        "# Copy radarlib/examples/radarlib.toml for a real deployment.",
        "",
        "[logging]",
        'level = "WARNING"',
        "",
        "[paths]",
        'root = "data"',
        'bufr_dir = "{root}/{radar}/bufr"',
        'netcdf_dir = "{root}/{radar}/netcdf"',
        'state_db = "{root}/state.db"',
        "",
        "[sources.demo]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f'username = "{user}"',
        f'password_env = "{_PASSWORD_ENV}"',
        'remote_base_path = "/L2"',
        "connect_timeout = 5",
        "command_timeout = 10",
        "data_timeout = 10",
        "",
        "[download]",
        "poll_interval = 1",
        "max_concurrent_downloads = 4",
        "",
        "[processing]",
        "poll_interval = 1",
        "max_concurrent_processing = 1   # per radar: 4 radars, 4 worker processes",
        "# the real RMA11 sample lacks RHOHV and PHIDP: write it with what it has, soon",
        "allow_incomplete = true",
        "incomplete_timeout_hours = 0.003",
        "retry_backoff_seconds = 1",
        "shutdown_grace_seconds = 20",
        "",
        "[qc]   # quality control with the default settings: DBZH_QC beside DBZH",
        "",
    ]
    for strategy, numbers in _volume_types(served).items():
        lines.append(f'[volume_types."{strategy}"]')
        for number, fields in numbers.items():
            lines.append(f'"{number}" = {json.dumps(fields)}')
        lines.append("")
    for radar in served:
        lines += [
            "[[radars]]",
            f'code = "{radar.code}"',
            'source = "demo"',
            f"start_date = {_toml_time(radar.start)}",
            f"end_date = {_toml_time(radar.end)}",
            "",
        ]
    path = output / "radarlib.toml"
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------- FTP server


def _server_class() -> type[Any]:
    """aioftp's Server plus ``SIZE`` (RFC 3659), which production radar servers answer."""
    import aioftp
    from aioftp.server import ConnectionConditions, PathConditions, PathPermissions

    class SizeServer(aioftp.Server):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.commands_mapping["size"] = self.size

        @ConnectionConditions(ConnectionConditions.login_required)
        @PathConditions(PathConditions.path_must_exists, PathConditions.path_must_be_file)
        @PathPermissions(PathPermissions.readable)  # type: ignore[arg-type]
        async def size(self, connection: Any, rest: str | PurePosixPath, /) -> bool:
            real_path, _ = self.get_paths(connection, rest)
            info = await connection.path_io.stat(real_path)
            connection.response("213", str(info.st_size))
            return True

    return SizeServer


class DemoFTPServer:
    """aioftp's server over ``root`` on 127.0.0.1 (random port), read-only, in its own thread."""

    def __init__(self, root: Path, user: str, password: str) -> None:
        self.root = root
        self.user = user
        self._password = password
        self.port = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._serve, name="demo-ftp", daemon=True)

    def __enter__(self) -> DemoFTPServer:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError(f"the demo FTP server did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to __enter__
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        import aioftp

        user = aioftp.User(
            self.user,
            self._password,
            base_path=self.root,
            permissions=[aioftp.Permission("/", readable=True, writable=False)],
        )
        server = _server_class()([user], socket_timeout=30, idle_timeout=60)
        await server.start(host="127.0.0.1", port=0)
        self.port = int(server.address[1])
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.close()


# --------------------------------------------------------------------------- progress + table


@dataclass
class VolumeRow:
    """One line of the demo's table."""

    radar: str
    time: str
    volume: str
    fields: str
    status: str
    netcdf: str
    seconds: float | None


@dataclass
class DemoReport:
    """What the demo did: its table, files, quicklook and outcome."""

    rows: list[VolumeRow]
    netcdf_files: list[Path]
    quicklook: Path | None
    config_path: Path
    elapsed: float
    timed_out: bool = False
    errors: list[str] = field(default_factory=list)
    #: the COLMAX image of the quicklook's volume (radarlib.products)
    colmax: Path | None = None
    #: a Prometheus scrape of the dashboard's /metrics at the end of the run
    metrics: Path | None = None

    @property
    def ok(self) -> bool:
        """Every volume written, nothing failed, no time-out."""
        return (
            not self.timed_out
            and not self.errors
            and bool(self.rows)
            and all(r.status == "completed" for r in self.rows)
        )


class _Progress:
    """Watches the state DB while the pipeline runs; stops it when every volume has an outcome."""

    def __init__(
        self, state_db: Path, files: int, volumes: int, out: TextIO, timeout: float
    ) -> None:
        self.state_db = state_db
        self.files = files
        self.volumes = volumes
        self.out = out
        self.timeout = timeout
        self.started = time.monotonic()
        self.claimed: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.timed_out = False
        self._last_line = ""
        self._last_state = ""
        self._last_print = 0.0

    def _snapshot(self) -> tuple[int, dict[str, str]]:
        from radarlib.state.sqlite import SQLiteStateTracker

        if not self.state_db.exists():
            return 0, {}
        with SQLiteStateTracker(self.state_db) as tracker:
            statuses: dict[str, str] = {}
            for status in ("pending", "processing", *_TERMINAL):
                for row in tracker.get_volumes_by_status(status):
                    statuses[str(row["volume_id"])] = status
            return tracker.count(), statuses

    def _show(self, elapsed: float, state: str, *, final: bool = False) -> None:
        """Rewrite one line on a terminal; elsewhere print a line when something changed."""
        line = f"  {elapsed:5.1f}s  {state}"
        if self.out.isatty():
            self.out.write("\r" + line.ljust(len(self._last_line)) + ("\n" if final else ""))
        elif state != self._last_state or final or elapsed - self._last_print >= 10:
            self.out.write(line + "\n")
            self._last_print = elapsed
        self.out.flush()
        self._last_line, self._last_state = line, state

    async def watch(self, pipeline: Any) -> None:
        """Print progress twice a second; call ``pipeline.stop()`` when done or timed out."""
        done = False
        while not done:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            try:
                count, statuses = await asyncio.to_thread(self._snapshot)
            except RadarlibError:
                continue
            for volume_id, status in statuses.items():
                if status != "pending":
                    self.claimed.setdefault(volume_id, now)
                if status in _TERMINAL:
                    self.finished.setdefault(volume_id, now)
                elif status != "processing":
                    self.finished.pop(volume_id, None)
            tally = {s: sum(1 for v in statuses.values() if v == s) for s in set(statuses.values())}
            summary = ", ".join(f"{n} {s}" for s, n in sorted(tally.items())) or "none yet"
            elapsed = now - self.started
            self._show(
                elapsed,
                f"files {count}/{self.files} downloaded  "
                f"volumes {len(statuses)}/{self.volumes}: {summary}",
            )
            done = (
                count >= self.files
                and len(statuses) >= self.volumes
                and all(s in _TERMINAL for s in statuses.values())
            )
            if not done and elapsed > self.timeout:
                self.timed_out = done = True
        self._show(time.monotonic() - self.started, self._last_state, final=True)
        pipeline.stop()


class _ConversionTimes(logging.Handler):
    """Collects each volume's conversion seconds from the processing daemon's INFO records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        volume_id = getattr(record, "volume_id", None)
        if volume_id is None or "processed in" not in str(record.msg):
            return
        args = record.args if isinstance(record.args, tuple) else ()
        number = next((a for a in args if isinstance(a, float)), None)
        if number is not None:
            self.seconds[str(volume_id)] = number


def _relative(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def _rows(state_db: Path, progress: _Progress, times: Mapping[str, float]) -> list[VolumeRow]:
    from radarlib.state.sqlite import SQLiteStateTracker

    rows: list[VolumeRow] = []
    with SQLiteStateTracker(state_db) as tracker:
        volumes = [
            v
            for s in ("pending", "processing", *_TERMINAL)
            for v in tracker.get_volumes_by_status(s)
        ]
    for v in sorted(volumes, key=lambda v: (v["radar_code"], v["observation_datetime"])):
        volume_id = str(v["volume_id"])
        fields = str(v.get("downloaded_fields") or "").replace(",", " ")
        missing = str(v.get("missing_fields") or "")
        if missing:
            fields += "  (missing " + missing.replace(",", " ") + ")"
        seconds = times.get(volume_id)
        if seconds is None and volume_id in progress.claimed and volume_id in progress.finished:
            seconds = max(progress.finished[volume_id] - progress.claimed[volume_id], 0.0)
        netcdf = v.get("netcdf_path")
        moment = parse_iso(str(v["observation_datetime"]))
        rows.append(
            VolumeRow(
                radar=str(v["radar_code"]),
                time=moment.strftime("%Y-%m-%d %H:%M:%S"),
                volume=f"{v['vol_code']}/{v['vol_number']}",
                fields=fields,
                status=str(v["status"]),
                netcdf=_relative(Path(str(netcdf))) if netcdf else "-",
                seconds=seconds,
            )
        )
    return rows


def format_table(rows: Sequence[VolumeRow]) -> str:
    """The volumes as an aligned text table."""
    header = ("radar", "time (UTC)", "vol", "fields", "status", "NetCDF", "seconds")
    body = [
        (r.radar, r.time, r.volume, r.fields, r.status, r.netcdf,
         "-" if r.seconds is None else f"{r.seconds:.1f}")
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + f"  {{:>{widths[-1]}}}"
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in body]
    return "\n".join(out)


# --------------------------------------------------------------------------- the demo


def _prepare(output: Path) -> None:
    if output.exists() and any(output.iterdir()) and not (output / _MARKER).exists():
        raise ConfigError(
            "--output",
            f"{output} exists and was not made by `radarlib demo`; choose another folder",
        )
    for part in ("ftp", "data", "radarlib.toml"):
        target = output / part
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for pattern in ("quicklook_*.png", "colmax_*.png"):
        for old in output.glob(pattern) if output.exists() else ():
            old.unlink()
    (output / "metrics.txt").unlink(missing_ok=True)
    output.mkdir(parents=True, exist_ok=True)
    (output / _MARKER).write_text("made by radarlib demo; safe to delete\n")


def _pick_quicklook(rows: Sequence[VolumeRow], netcdf: Sequence[Path]) -> Path | None:
    by_name = {p.name: p for p in netcdf}
    ranked = sorted(
        (r for r in rows if r.status == "completed" and "DBZH" in r.fields.split()),
        key=lambda r: (r.radar != "RMA11", r.radar),
    )
    for row in ranked:
        path = by_name.get(Path(row.netcdf).name)
        if path is not None:
            return path
    return None


def _colmax_png(netcdf: Path, output: Path) -> Path:
    """COLMAX (240 km, 1 km) of one volume's QC'd DBZH as ``colmax_<volume>.png``."""
    from radarlib.products.colmax import make_colmax
    from radarlib.products.grid import GridSpec
    from radarlib.products.polar import read_polar
    from radarlib.products.ppi import render_colmax

    colmax = make_colmax(read_polar(netcdf), GridSpec(240.0, 1.0))
    return render_colmax(colmax, output / f"colmax_{netcdf.stem}.png")


async def _run(
    output: Path,
    volumes: int,
    samples: Path | None,
    out: TextIO,
    timeout: float,
    logging_options: tuple[str | None, str | None],
) -> DemoReport:
    from radarlib.config import load_config
    from radarlib.logsetup import setup_logging
    from radarlib.pipeline.supervisor import Pipeline, run_pipeline

    started = time.monotonic()
    ftp_root = output / "ftp"
    out.write(f"radarlib demo: writing {volumes} synthetic volume(s) for each of "
              f"{', '.join(DEMO_RADARS)}" + (f" + the real samples of {samples}" if samples else "")
              + f" into {_relative(ftp_root)}\n")  # fmt: skip
    served = await asyncio.to_thread(build_server_tree, ftp_root, volumes, samples)
    nfiles = sum(len(r.files) for r in served)
    nvolumes = sum(len(r.volumes) for r in served)
    password = secrets.token_urlsafe(16)
    with DemoFTPServer(ftp_root, "demo", password) as server:
        config_path = write_demo_config(output, server.port, "demo", served)
        config = load_config(config_path, env={_PASSWORD_ENV: password})
        level, fmt = logging_options
        setup_logging(
            level or config.logging.level,
            "json" if fmt == "json" else config.logging.format,
            secrets=config.secrets(),
        )
        out.write(
            f"serving {nfiles} files ({nvolumes} volumes of {len(served)} radars) on "
            f"ftp://127.0.0.1:{server.port}/L2; config: {_relative(config_path)}\n"
        )
        state_db = config.state_dbs()[0]
        progress = _Progress(state_db, nfiles, nvolumes, out, timeout)
        pipeline = Pipeline(config)
        times = _ConversionTimes()
        daemon_log = logging.getLogger("radarlib.pipeline.processing")
        daemon_log.addHandler(times)
        if daemon_log.getEffectiveLevel() > logging.INFO:
            daemon_log.setLevel(logging.INFO)
        logging.getLogger("aioftp.server").setLevel(logging.CRITICAL)  # client hang-ups
        board = _start_dashboard(config, out)
        try:
            code = await run_pipeline(pipeline, watcher=progress.watch)
        finally:
            daemon_log.removeHandler(times)
    rows = _rows(state_db, progress, times.seconds)
    netcdf = sorted(p for r in served for p in config.netcdf_dir(r.code).glob("*.nc"))
    report = DemoReport(
        rows=rows,
        netcdf_files=netcdf,
        quicklook=None,
        config_path=config_path,
        elapsed=0.0,
        timed_out=progress.timed_out,
    )
    if code != 0:
        report.errors.append("a daemon stopped with an error (see the log above)")
    chosen = _pick_quicklook(rows, netcdf)
    if chosen is not None:
        from radarlib.quicklook import quicklook

        png = output / f"quicklook_{chosen.stem}.png"
        report.quicklook = await asyncio.to_thread(quicklook, chosen, png)
        report.colmax = await asyncio.to_thread(_colmax_png, chosen, output)
    if board is not None:
        try:
            report.metrics = await asyncio.to_thread(_scrape_metrics, board.url, output)
        finally:
            await asyncio.to_thread(board.stop)
    report.elapsed = time.monotonic() - started
    return report


def _start_dashboard(config: Any, out: TextIO) -> Any:
    """The dashboard of the demo's database on a free loopback port (None if it cannot bind)."""
    from radarlib.dashboard import Dashboard, DashboardSettings
    from radarlib.metrics import config_targets

    board = Dashboard(
        DashboardSettings(targets=tuple(config_targets(config)), port=0, refresh_seconds=2)
    )
    try:
        board.start()
    except OSError as exc:
        out.write(f"dashboard not started: {exc}\n")
        return None
    out.write(f"dashboard: {board.url} (while the demo runs; `radarlib dashboard` after)\n")
    return board


def _scrape_metrics(url: str, output: Path) -> Path:
    """Save one Prometheus scrape of the dashboard's ``/metrics`` as ``<output>/metrics.txt``."""
    import urllib.request

    with urllib.request.urlopen(url + "metrics", timeout=30) as answer:
        text = answer.read()
    target = output / "metrics.txt"
    target.write_bytes(text)
    return target


def run_demo(
    output: Path,
    *,
    volumes: int = 3,
    samples: Path | bool | None = True,
    out: TextIO | None = None,
    timeout: float = 110.0,
    log_level: str | None = None,
    log_format: str | None = None,
) -> DemoReport:
    """Run the demo into ``output`` and print its progress and table to ``out`` (stdout).

    Logs go to stderr at ``log_level`` (default WARNING, so the progress stays readable).
    """
    stream = sys.stdout if out is None else out
    if volumes < 1:
        raise ConfigError("--volumes", f"must be at least 1, got {volumes}")
    sample_dir = find_samples() if samples is True else (samples or None)
    _prepare(output)
    report = asyncio.run(
        _run(output, volumes, sample_dir, stream, timeout, (log_level, log_format))
    )
    stream.write("\n" + format_table(report.rows) + "\n")
    stream.write(
        "seconds: conversion time in a worker process (a worker's first volume includes "
        "its start-up)\n\n"
    )
    stream.write(f"{len(report.netcdf_files)} NetCDF file(s) under {_relative(output / 'data')}\n")
    if report.metrics is not None:
        stream.write(f"metrics (Prometheus scrape): {_relative(report.metrics)}\n")
    if report.quicklook is not None:
        stream.write(f"quicklook: {_relative(report.quicklook)}\n")
        if report.colmax is not None:
            stream.write(f"COLMAX:    {_relative(report.colmax)}\n")
    else:
        report.errors.append("no completed volume with DBZH to draw")
    if report.timed_out:
        stream.write(f"timed out after {timeout:.0f}s; the table shows where each volume got to\n")
    for error in report.errors:
        stream.write(f"problem: {error}\n")
    stream.write(f"done in {report.elapsed:.1f}s\n")
    stream.flush()
    return report
