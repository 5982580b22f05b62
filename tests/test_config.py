"""The TOML config: validation names the key, passwords come from env or outside the repo."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from radarlib.config import DEFAULT_PASSWORD_ENV, example_config_path, load_config, parse_config
from radarlib.errors import ConfigError
from radarlib.volume_types import DEFAULT_VOLUME_TYPES

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
[sources.main]
host = "ftp.example.org"
username = "radar"

[[radars]]
code = "RMA1"
start_date = 2025-11-17T00:00:00Z
"""


def write(tmp_path: Path, text: str, name: str = "radarlib.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(
            write(tmp_path, text), env={"RADARLIB_FTP_PASSWORD": "pw"} if env is None else env
        )
    return info.value


def test_minimal_config_uses_production_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={DEFAULT_PASSWORD_ENV: "from-env"})
    assert config.volume_types == DEFAULT_VOLUME_TYPES
    assert config.volume_types["0315"]["01"] == ["DBZH", "DBZV", "ZDR", "RHOHV", "PHIDP", "KDP"]
    source = config.sources["main"]
    assert (source.host, source.port, source.username, source.remote_base_path) == (
        "ftp.example.org",
        21,
        "radar",
        "/L2",
    )
    assert source.password == "from-env"
    radar = config.radar("RMA1")
    assert radar.source == "main" and radar.enabled and radar.end_date is None
    assert radar.start_date == datetime(2025, 11, 17, tzinfo=timezone.utc)
    # paths are relative to the config file's folder, filled per radar
    assert config.bufr_dir("RMA1") == (tmp_path / "RMA1" / "bufr").resolve()
    assert config.netcdf_dir("RMA1") == (tmp_path / "RMA1" / "netcdf").resolve()
    assert config.state_dbs() == [(tmp_path / "state.db").resolve()]
    assert config.logging.level == "INFO" and config.logging.format == "text"


def test_password_never_in_repr(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), env={DEFAULT_PASSWORD_ENV: "hunter2-secret"})
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" in config.secrets()


def test_shipped_example_loads_and_is_documented(tmp_path: Path) -> None:
    example = example_config_path()
    assert example.is_file()
    config = load_config(
        example, env={"RADARLIB_FTP_PASSWORD": "x", "RADARLIB_FTP_PASSWORD_B": "y"}
    )
    assert config.volume_types == DEFAULT_VOLUME_TYPES
    assert len(config.sources) >= 2 and len(config.radars) >= 2
    reference = (ROOT / "docs" / "configuration.md").read_text()
    # every key the example uses is in the reference
    for section in ("download", "processing", "output"):
        for key in getattr(config, section):
            assert f"`{key}`" in reference, key


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ("[paths]\nroot = 'x'\nbufr_dri = '{root}'\n", "paths.bufr_dri"),
        ("[download]\npoll_intervall = 5\n", "download.poll_intervall"),
        ("[processing]\nallow_incomplete = true\nworkers = 3\n", "processing.workers"),
        ("[colour]\nx = 1\n", "colour"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, snippet: str, key: str) -> None:
    error = error_for(tmp_path, MINIMAL + snippet)
    assert error.key == key
    assert key in str(error) and "unknown key" in str(error)


@pytest.mark.parametrize(
    ("snippet", "key", "words"),
    [
        ("[download]\npoll_interval = '60'\n", "download.poll_interval", "must be a number"),
        (
            "[download]\nmax_concurrent_downloads = 2.5\n",
            "download.max_concurrent_downloads",
            "must be an integer",
        ),
        ("[download]\nverify_checksums = 1\n", "download.verify_checksums", "true or false"),
        ("[download]\nlocal_layout = 'tree'\n", "download.local_layout", "'flat' or 'date'"),
        (
            "[processing]\nincomplete_timeout_hours = -1\n",
            "processing.incomplete_timeout_hours",
            ">= 0",
        ),
        (
            "[processing]\nmax_concurrent_processing = true\n",
            "processing.max_concurrent_processing",
            "must be an integer",
        ),
        ("[output]\ncompression_level = 12\n", "output.compression_level", "between 0 and 9"),
        ("[logging]\nlevel = 'LOUD'\n", "logging.level", "DEBUG"),
        ("[paths]\nnetcdf_dir = '{root}/{station}'\n", "paths.netcdf_dir", "{station}"),
        ("[volume_types.0315]\n01 = 'DBZH'\n", "volume_types.0315.01", "list"),
    ],
)
def test_wrong_type_or_value_is_named(tmp_path: Path, snippet: str, key: str, words: str) -> None:
    error = error_for(tmp_path, MINIMAL + snippet)
    assert error.key == key
    assert words in str(error)


def test_radar_errors_are_named(tmp_path: Path) -> None:
    base = "[sources.main]\nhost = 'h'\n"
    assert error_for(tmp_path, base).key == "radars"
    naive = base + "[[radars]]\ncode = 'RMA1'\nstart_date = 2025-11-17T00:00:00\n"
    error = error_for(tmp_path, naive)
    assert error.key == "radars[0].start_date" and "time zone" in str(error)
    bad_code = base + "[[radars]]\ncode = 'rma1'\nstart_date = 2025-11-17\n"
    assert error_for(tmp_path, bad_code).key == "radars[0].code"
    twice = base + "[[radars]]\ncode='RMA1'\nstart_date=2025-11-17\n" * 2
    assert error_for(tmp_path, twice).key == "radars[1].code"
    missing = base + "[[radars]]\ncode = 'RMA1'\n"
    assert error_for(tmp_path, missing).key == "radars[0].start_date"
    no_source = base + "[[radars]]\ncode='RMA1'\nsource='other'\nstart_date=2025-11-17\n"
    error = error_for(tmp_path, no_source)
    assert error.key == "radars[0].source" and "main" in str(error)
    backwards = base + "[[radars]]\ncode='RMA1'\nstart_date=2025-11-17\nend_date=2025-11-16\n"
    assert error_for(tmp_path, backwards).key == "radars[0].end_date"


def test_missing_password_names_the_key_and_variable(tmp_path: Path) -> None:
    error = error_for(tmp_path, MINIMAL, env={})
    assert error.key == "sources.main.password_env"
    assert DEFAULT_PASSWORD_ENV in str(error) and "not set" in str(error)
    custom = MINIMAL.replace('username = "radar"', "username = 'radar'\npassword_env = 'SMN_PW'")
    error = error_for(tmp_path, custom, env={DEFAULT_PASSWORD_ENV: "x"})
    assert error.key == "sources.main.password_env" and "SMN_PW" in str(error)
    config = load_config(write(tmp_path, custom), env={"SMN_PW": "per-source"})
    assert config.sources["main"].password == "per-source"


def test_anonymous_source_needs_no_password(tmp_path: Path) -> None:
    text = MINIMAL.replace('username = "radar"\n', "")
    config = load_config(write(tmp_path, text), env={})
    assert config.sources["main"].username == "anonymous"


def test_literal_password_refused_inside_a_git_work_tree(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    text = MINIMAL.replace('username = "radar"', 'username = "radar"\npassword = "literal-pw"')
    with pytest.raises(ConfigError) as info:
        load_config(write(repo, text), env={})
    assert info.value.key == "sources.main.password" and "git" in str(info.value)
    assert "literal-pw" not in str(info.value)
    outside = tmp_path / "etc"
    outside.mkdir()
    assert load_config(write(outside, text), env={}).sources["main"].password == "literal-pw"


def test_several_sources_and_per_radar_databases(tmp_path: Path) -> None:
    text = """
[paths]
root = "/srv/radar"
state_db = "{root}/{radar}/state.db"
[sources.a]
host = "a.example"
password_env = "PW_A"
username = "u"
use_tls = true
data_timeout = 30
[sources.b]
host = "b.example"
port = 2121
remote_base_path = "/data/L2/"
[[radars]]
code = "RMA1"
source = "a"
start_date = 2025-01-01
[[radars]]
code = "RMA5"
source = "b"
start_date = "2025-01-02T06:00:00Z"
enabled = false
"""
    config = load_config(write(tmp_path, text), env={"PW_A": "a-pw"})
    assert [r.code for r in config.enabled_radars()] == ["RMA1"]
    assert config.sources["a"].use_tls and config.sources["a"].timeouts == {"data_timeout": 30.0}
    assert config.sources["b"].remote_base_path == "/data/L2"
    assert config.state_db("RMA5") == Path("/srv/radar/RMA5/state.db")
    assert config.state_dbs() == [
        Path("/srv/radar/RMA1/state.db"),
        Path("/srv/radar/RMA5/state.db"),
    ]
    assert config.radar("RMA5").start_date == datetime(2025, 1, 2, 6, tzinfo=timezone.utc)
    error = error_for(tmp_path, text.replace('source = "b"\n', ""), env={"PW_A": "x"})
    assert error.key == "radars[1].source" and "several sources" in str(error)


def test_bad_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[sources.main\nhost = 'x'")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "TOML" in str(info.value)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_daemon_configs_carry_every_setting(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """
end_date = 2025-11-18T00:00:00Z
[download]
poll_interval = 7
max_concurrent_downloads = 3
lookback_hours = 2
local_layout = "date"
[processing]
poll_interval = 4.5
max_concurrent_processing = 1
allow_incomplete = true
incomplete_timeout_hours = 0.5
max_attempts = 5
[output]
compression_level = 6
[volume_types.0315]
02 = ["VRAD", "WRAD"]
"""
    )
    config = load_config(write(tmp_path, text), env={DEFAULT_PASSWORD_ENV: "pw"})
    down = config.download_config("RMA1")
    assert (down.host, down.username, down.password, down.radar_code) == (
        "ftp.example.org",
        "radar",
        "pw",
        "RMA1",
    )
    assert down.remote_base_path == "/L2"
    assert Path(down.local_download_dir) == config.bufr_dir("RMA1")
    assert Path(down.state_db) == config.state_db("RMA1")
    assert down.end_date == datetime(2025, 11, 18, tzinfo=timezone.utc)
    assert (down.poll_interval, down.max_concurrent_downloads, down.lookback_hours) == (7, 3, 2)
    assert down.local_layout == "date"
    assert "pw" not in repr(down).replace("password_env", "") or "password=" not in repr(down)
    proc = config.processing_config("RMA1")
    assert Path(proc.local_bufr_dir) == config.bufr_dir("RMA1")
    assert Path(proc.local_netcdf_dir) == config.netcdf_dir("RMA1")
    assert proc.radar_code == "RMA1" or proc.radar_name == "RMA1"
    assert (proc.poll_interval, proc.max_concurrent_processing, proc.max_attempts) == (4.5, 1, 5)
    assert proc.allow_incomplete is True and proc.incomplete_timeout_hours == 0.5
    assert proc.compression_level == 6
    assert dict(proc.volume_types) == {"0315": {"02": ["VRAD", "WRAD"]}}


def test_parse_config_takes_env_mapping() -> None:
    data = {
        "sources": {"s": {"host": "h", "username": "u", "password_env": "X"}},
        "radars": [{"code": "AR5", "start_date": "2024-01-01T00:00:00Z"}],
    }
    config = parse_config(data, base_dir="/tmp", env={"X": "pw"})
    assert config.sources["s"].password == "pw"
    with pytest.raises(ConfigError, match=r"sources\.s\.password_env"):
        parse_config(data, base_dir="/tmp", env={})


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ("[download]\nretries = 3\n", "download.retries"),
        ("[download]\npoll_interval = 'soon'\n", "download.poll_interval"),
    ],
)
def test_cli_reports_config_errors_with_the_key(tmp_path: Path, snippet: str, key: str) -> None:
    path = write(tmp_path, MINIMAL + snippet)
    for command in (["run"], ["status"]):
        result = subprocess.run(
            [sys.executable, "-m", "radarlib", *command, "--config", str(path)],
            capture_output=True, text=True, timeout=60,
            env={"PATH": "/usr/bin:/bin", "RADARLIB_FTP_PASSWORD": "pw"},
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert key in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_cli_reports_missing_password(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    result = subprocess.run(
        [sys.executable, "-m", "radarlib", "run", "--config", str(path)],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "sources.main.password_env" in result.stderr and DEFAULT_PASSWORD_ENV in result.stderr


def test_processing_executor_dask_reaches_the_daemon_config(tmp_path: Path) -> None:
    text = MINIMAL + '[processing]\nexecutor = "dask"\ndask_scheduler = "tcp://10.0.0.5:8786"\n'
    config = load_config(write(tmp_path, text), env={DEFAULT_PASSWORD_ENV: "pw"})
    assert config.processing == {"executor": "dask", "dask_scheduler": "tcp://10.0.0.5:8786"}
    proc = config.processing_config("RMA1")
    assert (proc.executor, proc.dask_scheduler) == ("dask", "tcp://10.0.0.5:8786")
    default = load_config(write(tmp_path, MINIMAL), env={DEFAULT_PASSWORD_ENV: "pw"})
    proc = default.processing_config("RMA1")
    assert (proc.executor, proc.dask_scheduler) == ("processes", None)


@pytest.mark.parametrize(
    ("snippet", "key", "words"),
    [
        ('executor = "threads"\n', "processing.executor", "'processes' or 'dask'"),
        ('executor = "dask"\n', "processing.dask_scheduler", "required with executor = 'dask'"),
        (
            'executor = "dask"\ndask_scheduler = "10.0.0.5:8786"\n',
            "processing.dask_scheduler",
            "tcp://host:8786",
        ),
        ('dask_scheduler = "tcp://h:8786"\n', "processing.dask_scheduler", "only used"),
        ("dask_scheduler = 8786\n", "processing.dask_scheduler", "not a scheduler address"),
    ],
)
def test_processing_executor_errors_name_the_key(
    tmp_path: Path, snippet: str, key: str, words: str
) -> None:
    path = write(tmp_path, MINIMAL + "[processing]\n" + snippet)
    with pytest.raises(ConfigError) as info:  # at load, or when `radarlib run` builds the daemon
        load_config(path, env={DEFAULT_PASSWORD_ENV: "pw"}).processing_config("RMA1")
    assert info.value.key == key
    assert key in str(info.value) and words in str(info.value)


def test_tls_ca_file_is_relative_to_the_config_and_checked_by_the_daemon(tmp_path: Path) -> None:
    tls = MINIMAL.replace(
        'username = "radar"', 'username = "radar"\nuse_tls = true\ntls_ca_file = "certs/ca.pem"'
    )
    error = error_for(tmp_path, tls)  # the file does not exist yet
    assert error.key == "sources.main.tls_ca_file" and "no such file" in str(error)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "test CA")])
    moment = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(moment).not_valid_after(moment + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    config = load_config(write(tmp_path, tls), env={"RADARLIB_FTP_PASSWORD": "pw"})
    assert config.sources["main"].tls_ca_file == tmp_path / "certs" / "ca.pem"
    daemon_config = config.download_config("RMA1")
    assert daemon_config.ssl_context() is not None  # loads the CA
    assert daemon_config.use_tls is True
    assert daemon_config.tls_ca_file == tmp_path / "certs" / "ca.pem"


# --------------------------------------------------------------------------- issue 14 / 13


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = MINIMAL.replace('host = "ftp.example.org"', 'host = "ftp.example.org"\nport = "21"')
    text += "[download]\npoll_interval = -5\nmax_attempts = 0\n[processing]\nretries = 3\n"
    text += "[logging]\nlevel = 'LOUD'\n"
    error = error_for(tmp_path, text)
    from radarlib.config import ConfigErrors

    assert isinstance(error, ConfigErrors)
    keys = [problem.key for problem in error.problems]
    assert sorted(keys) == sorted(
        [
            "sources.main.port",
            "download.poll_interval",
            "download.max_attempts",
            "processing.retries",
            "logging.level",
        ]
    )
    assert str(error).startswith("5 problems in the configuration:")
    for key in keys:
        assert key in str(error)


def test_a_wrong_password_type_never_shows_its_value(tmp_path: Path) -> None:
    text = MINIMAL.replace('username = "radar"', 'username = "radar"\npassword = 73194528')
    error = error_for(tmp_path, text, env={})
    assert error.key == "sources.main.password"
    assert "must be a string, not an integer" in str(error)
    assert "73194528" not in str(error) and "73194528" not in repr(error)


def test_download_and_processing_keys_are_the_daemon_config_fields() -> None:
    import dataclasses

    from radarlib import config as module
    from radarlib.pipeline.download import DateBasedDaemonConfig
    from radarlib.pipeline.processing import ProcessingDaemonConfig

    for cls, elsewhere, keys in (
        (DateBasedDaemonConfig, module._DOWNLOAD_ELSEWHERE, module._download_class()[2]),
        (ProcessingDaemonConfig, module._PROCESSING_ELSEWHERE, module._processing_class()[2]),
    ):
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        assert set(keys) == names - elsewhere
        assert elsewhere <= names  # no stale exclusion


def test_a_new_daemon_config_field_becomes_a_toml_key_checked_by_the_dataclass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead adds fields to DateBasedDaemonConfig: the TOML layer must follow by itself."""
    import dataclasses

    from radarlib.checks import check_integer
    from radarlib.pipeline import download

    @dataclasses.dataclass
    class Extended(download.DateBasedDaemonConfig):
        max_file_size: int = 200_000_000

        def __post_init__(self) -> None:
            super().__post_init__()
            check_integer("max_file_size", self.max_file_size, 1)

    monkeypatch.setattr(download, "DateBasedDaemonConfig", Extended)
    error = error_for(tmp_path, MINIMAL + "[download]\nmax_file_size = 0\n")
    assert error.key == "download.max_file_size" and ">= 1" in str(error)
    config = load_config(
        write(tmp_path, MINIMAL + "[download]\nmax_file_size = 5000\n"),
        env={DEFAULT_PASSWORD_ENV: "pw"},
    )
    assert config.download_config("RMA1").max_file_size == 5000


def test_a_field_no_radar_produces_is_warned_with_the_cause(tmp_path: Path) -> None:
    text = MINIMAL + '[volume_types.0315]\n01 = ["DBZH", "KPD"]\n02 = ["VRAD", "WRAD"]\n'
    config = load_config(write(tmp_path, text), env={DEFAULT_PASSWORD_ENV: "pw"})
    assert len(config.warnings) == 1
    warning = config.warnings[0]
    assert warning.startswith("volume_types.0315.01: field 'KPD' is not a field the radars")
    assert "did you mean KDP?" in warning
    plain = load_config(write(tmp_path, MINIMAL), env={DEFAULT_PASSWORD_ENV: "pw"})
    assert plain.warnings == ()


def test_run_accepts_log_level_critical() -> None:
    from radarlib.cli import build_parser

    args = build_parser().parse_args(["run", "--config", "x.toml", "--log-level", "critical"])
    assert args.log_level == "CRITICAL"
