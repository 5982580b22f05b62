"""A real FTP server for tests: pyftpdlib on 127.0.0.1 in a thread, over a directory.

>>> server = FTPServerThread(tmp_path, user="radar", password="secret").start()  # doctest: +SKIP
>>> server.port, server.retrieved, server.listed                                  # doctest: +SKIP
>>> server.stop(); server.restart()          # same port, existing clients disconnected

Features the download-daemon tests need: start/stop/restart on the same port, optional
throttling of downloads (bytes per second, changeable while running) so a transfer can be
interrupted, a log of RETR and listing commands, and injected extra listing lines
(hostile names that a real file system cannot hold), and explicit FTPS: with ``certfile``
(PEM chain) and ``keyfile`` it requires TLS on the control and the data channels (needs
pyOpenSSL); ``retrieved_tls`` then logs, per RETR, whether the data channel was protected.
``python tests/ftpserver.py --root DIR`` runs one in its own process (used by
benchmarks/bench_download.py) and prints its port.

The pytest fixture :func:`ftp_server` serves ``tmp_path / "ftproot"``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # pyftpdlib still imports asyncore/asynchat (deprecated)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import DTPHandler, FTPHandler, ThrottledDTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer, ThreadedFTPServer

__all__ = ["FTPServerThread", "ftp_server"]

logging.getLogger("pyftpdlib").setLevel(logging.WARNING)


class FTPServerThread:
    """pyftpdlib serving ``root`` on 127.0.0.1 from a background thread."""

    def __init__(
        self,
        root: Path,
        *,
        user: str = "radar",
        password: str = "secret",
        host: str = "127.0.0.1",
        port: int = 0,
        write_limit: int = 0,
        mlsd: bool = True,
        rest: bool = True,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        rtt: float = 0.0,
    ) -> None:
        self.root = Path(root)
        self.rtt = rtt  # a WAN's round trip: each reply and each data connection waits this long
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.retrieved: list[str] = []
        self.retrieved_tls: list[bool] = []
        self.listed: list[str] = []
        self.extra_listing: dict[str, list[str]] = {}
        # fault handlers: raw listing lines (a list, or a factory of a lazy iterator), the
        # text of SIZE replies, and a per-user session limit answered with a bare 530
        self.raw_listing: dict[str, Any] = {}
        self.size_reply: str | None = None
        self.session_limit = 0
        self.sessions = 0
        self.refused_sessions = 0
        self.failed_logins = 0
        self.fake_passive_port = 0  # when set, EPSV points clients at this (closed) port
        self.mlsd = mlsd
        self.rest = rest
        self.certfile = certfile
        self.keyfile = keyfile
        self._lock = threading.Lock()
        self._server: FTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._handler = self._make_handler()
        self.throttle(write_limit)

    # -- handler classes bound to this server ---------------------------------------------
    def _make_handler(self) -> type[FTPHandler]:
        owner = self
        base: type[FTPHandler] = FTPHandler
        dtp_base: type[DTPHandler] = ThrottledDTPHandler
        if self.certfile is not None:  # explicit FTPS, required on both channels
            from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

            base, dtp_base = TLS_FTPHandler, TLS_DTPHandler

        class DTP(dtp_base):  # type: ignore[valid-type,misc,unused-ignore]
            def use_sendfile(self) -> bool:  # sendfile only when not throttled (never on TLS)
                return not getattr(type(self), "write_limit", 0) and super().use_sendfile()

        class FS(AbstractedFS):
            def _extra(self, basedir: str) -> list[str]:
                with owner._lock:
                    return list(owner.extra_listing.get(self.fs2ftp(basedir).rstrip("/"), []))

            def _raw(self, basedir: str, mlsd: bool) -> Iterator[bytes]:
                with owner._lock:
                    raw = owner.raw_listing.get(self.fs2ftp(basedir).rstrip("/"))
                lines = raw(mlsd) if callable(raw) else (raw or [])
                for line in lines:
                    yield line if isinstance(line, bytes) else line.encode("utf-8", "replace")

            def format_mlsx(
                self, basedir: str, listing: Any, perms: str, facts: Any, ignore_err: bool = True
            ) -> Iterator[bytes]:
                yield from super().format_mlsx(basedir, listing, perms, facts, ignore_err)
                for name in self._extra(basedir):
                    line = f"type=file;size=10;modify=20250101000000; {name}\r\n"
                    yield line.encode("utf-8", "surrogateescape")
                yield from self._raw(basedir, True)

            def format_list(
                self, basedir: str, listing: Any, ignore_err: bool = True
            ) -> Iterator[bytes]:
                yield from super().format_list(basedir, listing, ignore_err)
                for name in self._extra(basedir):
                    line = f"-rw-r--r--   1 owner    group          10 Jan 01 00:00 {name}\r\n"
                    yield line.encode("utf-8", "surrogateescape")
                yield from self._raw(basedir, False)

        class Handler(base):  # type: ignore[valid-type,misc,unused-ignore]
            def _record(self, log: list[str], path: str) -> None:
                with owner._lock:
                    log.append(self.fs.fs2ftp(path))

            def pre_process_command(self, line: str, cmd: str, arg: Any) -> Any:
                if owner.rtt:  # the request's and the reply's way over the WAN
                    time.sleep(owner.rtt)
                return super().pre_process_command(line, cmd, arg)

            def _data_handshake(self) -> None:
                if owner.rtt:  # the data connection's own round trip
                    time.sleep(owner.rtt)

            def ftp_RETR(self, file: str) -> Any:
                self._data_handshake()
                self._record(owner.retrieved, file)
                with owner._lock:
                    owner.retrieved_tls.append(bool(getattr(self, "_prot", False)))
                return super().ftp_RETR(file)

            def ftp_MLSD(self, path: str) -> Any:
                self._data_handshake()
                self._record(owner.listed, path)
                return super().ftp_MLSD(path)

            def ftp_LIST(self, path: str) -> Any:
                self._data_handshake()
                self._record(owner.listed, path)
                return super().ftp_LIST(path)

            def ftp_SIZE(self, path: str) -> Any:
                if owner.size_reply is not None:
                    self.respond(f"213 {owner.size_reply}")
                    return None
                return super().ftp_SIZE(path)

            def ftp_PASS(self, line: str) -> Any:
                with owner._lock:
                    full = bool(owner.session_limit) and owner.sessions >= owner.session_limit
                    owner.refused_sessions += full
                if full:  # what some servers say at their per-user session limit
                    self.respond("530 Login incorrect.")
                    return None
                result = super().ftp_PASS(line)
                if self.authenticated and not getattr(self, "_counted", False):
                    self._counted = True
                    with owner._lock:
                        owner.sessions += 1
                return result

            def on_disconnect(self) -> None:
                if getattr(self, "_counted", False):
                    self._counted = False
                    with owner._lock:
                        owner.sessions -= 1
                super().on_disconnect()

            def on_login_failed(self, username: str, password: str) -> None:
                with owner._lock:
                    owner.failed_logins += 1

            def ftp_EPSV(self, line: str) -> Any:
                if owner.fake_passive_port:
                    self.respond(
                        f"229 Entering extended passive mode (|||{owner.fake_passive_port}|)."
                    )
                    return None
                return super().ftp_EPSV(line)

            def ftp_REST(self, line: str) -> Any:
                if not owner.rest:
                    self.respond("502 REST not implemented.")
                    return None
                return super().ftp_REST(line)

        authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, self.password, str(self.root), perm="elr")
        Handler.authorizer = authorizer
        if not self.mlsd:  # a server without RFC 3659 listings: clients must use LIST
            Handler.proto_cmds = {
                k: v for k, v in base.proto_cmds.items() if k not in ("MLSD", "MLST")
            }
        if self.certfile is not None:
            Handler.certfile = str(self.certfile)
            Handler.keyfile = str(self.keyfile) if self.keyfile else None
            Handler.ssl_context = None  # built from the files above, for this class only
            Handler.tls_control_required = True
            Handler.tls_data_required = True
        Handler.dtp_handler = DTP
        Handler.abstracted_fs = FS
        Handler.auth_failed_timeout = 0.05
        Handler.banner = "radarlib test FTP server"
        Handler.permit_foreign_addresses = False
        return Handler

    def throttle(self, bytes_per_second: int) -> None:
        """Limit each download to ``bytes_per_second`` (0 = unlimited); applies immediately."""
        if self.certfile is not None and bytes_per_second:
            raise ValueError("throttling is not available on the FTPS server")
        self._handler.dtp_handler.write_limit = int(bytes_per_second)

    def set_password(self, password: str) -> None:
        """Change the accepted password (for credential tests)."""
        self.password = password
        self._handler.authorizer = authorizer = DummyAuthorizer()
        authorizer.add_user(self.user, password, str(self.root), perm="elr")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FTPServerThread:
        """Listen (on the same port as before after a stop) and serve in a daemon thread."""
        if self._thread is not None:
            raise RuntimeError("server already running")
        deadline = time.monotonic() + 10
        kind = ThreadedFTPServer if self.rtt else FTPServer  # a thread per client: delays overlap
        while True:
            try:
                server = kind((self.host, self.port), self._handler, ioloop=IOLoop())
                break
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._server = server
        self.port = server.address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._serve, args=(server,), daemon=True, name=f"ftpserver:{self.port}"
        )
        self._thread.start()
        return self

    def _serve(self, server: FTPServer) -> None:
        try:
            while not self._stopping.is_set():
                if self.rtt:
                    server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
                else:
                    server.ioloop.loop(timeout=0.02, blocking=False)
        finally:
            server.close_all()

    def stop(self) -> None:
        """Stop listening and drop every client connection (control and data)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        thread.join(10)
        self._server = None

    def restart(self) -> FTPServerThread:
        """Stop (if running) and start again on the same port."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> FTPServerThread:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------------------------
    def path(self, virtual: str) -> Path:
        """The local file behind a server path such as ``/L2/RMA1/...``."""
        return self.root / virtual.lstrip("/")

    def publish(self, name: str, data: bytes | Path, *, base: str = "/L2") -> Path:
        """Place a radar file where the radars put it: ``<base>/<RADAR>/<YYYY>/.../<MMSS>/``."""
        from radarlib.filename import BufrFileName

        folder = self.path(BufrFileName.parse(name).remote_dir(base))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        target.write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())
        return target

    def add_listing(self, virtual_dir: str, *names: str) -> None:
        """Make ``names`` appear (as 10-byte files) in every listing of ``virtual_dir``."""
        with self._lock:
            self.extra_listing.setdefault(virtual_dir.rstrip("/"), []).extend(names)

    def retr_count(self, name: str) -> int:
        """How many RETR commands asked for a path ending in ``name``."""
        with self._lock:
            return sum(1 for p in self.retrieved if p.endswith("/" + name))


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[FTPServerThread]:
    """A running :class:`FTPServerThread` over ``tmp_path / "ftproot"`` (user radar/secret)."""
    server = FTPServerThread(tmp_path / "ftproot").start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve a directory from this process until stdin closes or SIGTERM; prints the port."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--user", default="radar")
    parser.add_argument("--password", default=os.environ.get("FTP_TEST_PASSWORD", "secret"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rtt", type=float, default=0.0, help="emulated round trip, seconds")
    args = parser.parse_args(argv)
    # Warnings only: pyftpdlib logs every command at INFO when logging is not configured.
    logging.basicConfig(level=logging.WARNING)
    server = FTPServerThread(
        args.root, user=args.user, password=args.password, port=args.port, rtt=args.rtt
    )
    server.start()
    print(server.port, flush=True)
    try:
        sys.stdin.read()  # parent closes our stdin to stop us
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
