"""FTPS (explicit TLS) against a real pyftpdlib TLS server on 127.0.0.1 with a throw-away CA.

The server requires TLS on the control channel (AUTH TLS before USER) and on every data
channel (PROT P before RETR/MLSD), so a download that succeeds went through TLS end to end.
The client verifies the certificate chain and the host name: trusted only via ``tls_ca_file``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemon_helpers import bufr_bytes, ftp_daemon_config
from ftpserver import FTPServerThread
from radarlib.errors import ConfigError, TransportError
from radarlib.filename import BufrFileName
from radarlib.io.ftp import DateBasedDaemonConfig, DateBasedFTPDaemon
from radarlib.io.ftp.client import FTPClient
from radarlib.state.sqlite import SQLiteStateTracker

UTC = timezone.utc
DAY = datetime(2025, 10, 20, tzinfo=UTC)


@dataclass(frozen=True)
class _Pki:
    ca_file: Path  # the CA certificate clients trust
    cert_file: Path  # the server's certificate chain
    key_file: Path  # the server's private key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_pki(folder: Path) -> _Pki:
    """A CA and a server certificate for IP 127.0.0.1 signed by it (strict-X.509 friendly)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("radarlib test CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    pki = _Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(pem))
    pki.cert_file.write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    pki.key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> _Pki:
    folder = tmp_path / "pki"
    folder.mkdir()
    return _make_pki(folder)


@pytest.fixture
def tls_server(tmp_path: Path, pki: _Pki) -> Iterator[FTPServerThread]:
    server = FTPServerThread(
        tmp_path / "ftproot", certfile=pki.cert_file, keyfile=pki.key_file
    ).start()
    yield server
    server.stop()


def _config(server: FTPServerThread, tmp_path: Path, **kw: Any) -> DateBasedDaemonConfig:
    return ftp_daemon_config(server, tmp_path, use_tls=True, **kw)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tls_client(server: FTPServerThread, host: str = "127.0.0.1", **kw: Any) -> FTPClient:
    """An FTPS client of the test user (``ssl_context``: the system's trust, unless given)."""
    return FTPClient(host, server.port, username="radar", password="secret", use_tls=True, **kw)


def test_date_range_over_tls_is_downloaded_and_verified(
    tls_server: FTPServerThread, pki: _Pki, tmp_path: Path
) -> None:
    published: dict[str, bytes] = {}
    for hour, fields in ((1, ("DBZH", "ZDR")), (2, ("DBZH", "KDP", "RHOHV"))):
        for field in fields:
            name = BufrFileName("RMA11", "0315", "01", field, DAY + timedelta(hours=hour)).name
            published[name] = bufr_bytes(300_000 + 4097 * len(published))  # > several records
            tls_server.publish(name, published[name])
    outside = BufrFileName("RMA11", "0315", "01", "DBZH", DAY + timedelta(hours=5)).name
    tls_server.publish(outside, b"not in the range")
    config = _config(
        tls_server,
        tmp_path,
        tls_ca_file=pki.ca_file,
        start_date=DAY,
        end_date=DAY + timedelta(hours=3),
        max_concurrent_downloads=2,
    )
    daemon = DateBasedFTPDaemon(config)
    asyncio.run(asyncio.wait_for(daemon.run(), 60))

    assert daemon.get_stats()["files_downloaded"] == len(published)
    local = {p.name: p for p in (tmp_path / "dl").iterdir() if not p.name.endswith(".lock")}
    assert set(local) == set(published)  # no temp files, nothing outside the range
    with SQLiteStateTracker(tmp_path / "state.db") as tracker:
        for name, data in published.items():
            assert local[name].read_bytes() == data
            row = tracker.get_download(name)
            assert row is not None and row["status"] == "downloaded"
            assert row["file_size"] == len(data) and row["checksum"] == _sha(data)
        assert tracker.count() == len(published)
    # every transfer went over a protected data channel (the server refuses others anyway)
    assert sorted(p.rsplit("/", 1)[1] for p in tls_server.retrieved) == sorted(published)
    assert tls_server.retrieved_tls == [True] * len(published)


def test_client_resumes_over_tls(tls_server: FTPServerThread, pki: _Pki, tmp_path: Path) -> None:
    """REST over a TLS data channel (whose TLS session is the control connection's)."""
    data = os.urandom(1_500_000)
    name = BufrFileName("RMA11", "0315", "01", "DBZH", DAY).name
    tls_server.publish(name, data)
    remote = f"{BufrFileName.parse(name).remote_dir('/L2')}/{name}"
    context = _config(tls_server, tmp_path, tls_ca_file=pki.ca_file).ssl_context()

    async def go() -> bytes:
        async with (
            _tls_client(tls_server, ssl_context=context) as ftp,
            ftp.retrieve(remote, offset=600_000) as blocks,
        ):
            return b"".join([block async for block in blocks])

    assert asyncio.run(go()) == data[600_000:]
    assert tls_server.retrieved_tls == [True]


def test_cancelling_a_hanging_command_over_tls_cuts_the_session_at_once(
    tls_server: FTPServerThread, pki: _Pki, tmp_path: Path
) -> None:
    """Over TLS a command runs on the loop for the operation's thread; a cancel ends both."""
    asked = threading.Event()

    def hang(handler: object, line: str) -> None:  # the server reads SIZE, never answers
        asked.set()

    tls_server._handler.ftp_SIZE = hang  # type: ignore[attr-defined]
    context = _config(tls_server, tmp_path, tls_ca_file=pki.ca_file).ssl_context()

    async def go() -> None:
        ftp = _tls_client(tls_server, command_timeout=60.0, ssl_context=context)
        await ftp.connect()
        task = asyncio.create_task(ftp.size("/L2/x.BUFR"))
        await asyncio.to_thread(asked.wait, 10)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=20)  # far below the command timeout
        assert done and task.cancelled()
        assert not ftp.connected

    asyncio.run(go())


def test_untrusted_certificate_is_refused(tls_server: FTPServerThread) -> None:
    """Without the CA the self-made certificate is rejected: verification is on by default."""

    async def go() -> None:
        ftp = _tls_client(tls_server, connect_timeout=2.0)
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            await ftp.connect()

    asyncio.run(go())
    assert not tls_server.retrieved


def test_certificate_for_another_host_is_refused(
    tls_server: FTPServerThread, pki: _Pki, tmp_path: Path
) -> None:
    """A trusted certificate that does not name the host (here: 127.0.0.1 only) is refused."""
    context = _config(tls_server, tmp_path, tls_ca_file=pki.ca_file).ssl_context()

    async def go() -> None:
        ftp = _tls_client(tls_server, "localhost", connect_timeout=2.0, ssl_context=context)
        with pytest.raises(TransportError, match=r"CERTIFICATE_VERIFY_FAILED|[Hh]ostname"):
            await ftp.connect()

    asyncio.run(go())


def test_plain_client_is_turned_away_by_a_tls_only_server(tls_server: FTPServerThread) -> None:
    async def go() -> None:
        ftp = FTPClient("127.0.0.1", tls_server.port, username="radar", password="secret")
        with pytest.raises(TransportError, match="login"):
            await ftp.connect()

    asyncio.run(go())


def test_tls_ca_file_is_checked(tmp_path: Path) -> None:
    not_a_path: Any = 3
    with pytest.raises(ConfigError, match="tls_ca_file"):
        DateBasedDaemonConfig(
            "127.0.0.1",
            local_download_dir=tmp_path,
            state_db=tmp_path / "s.db",
            tls_ca_file=not_a_path,
        )
    config = DateBasedDaemonConfig(
        "127.0.0.1",
        local_download_dir=tmp_path,
        state_db=tmp_path / "s.db",
        use_tls=True,
        tls_ca_file=tmp_path / "missing.pem",
    )
    with pytest.raises(ConfigError, match="tls_ca_file: cannot load"):
        config.ssl_context()
    assert (
        DateBasedDaemonConfig(
            "127.0.0.1", local_download_dir=tmp_path, state_db=tmp_path / "s.db"
        ).ssl_context()
        is None
    )  # TLS off: no context
