"""A conversion worker: ``python -m radarlib.pipeline.worker``, driven over its stdin/stdout.

:class:`~radarlib.pipeline.workers.ConversionPool` starts one of these per slot. The worker
never imports the program that started it (unlike :mod:`multiprocessing`'s ``spawn``, which
re-runs the parent's ``__main__``): a user script that ends with a bare
``asyncio.run(...)`` works as written, and a script read from stdin works too.

Protocol: length-prefixed pickles (:func:`write_frame` / :func:`read_frame`), one request and
one reply at a time. The parent sends ``{"sys_path": [...], "converter": "module:function"}``
first, the worker answers ``("ready", pid)``; then ``("ping",)`` → ``("pong", pid)`` and
``("job", ConversionJob)`` → ``("outcome", ConversionOutcome)``, and
``("call", "module:function", args)`` → ``("returned", value)`` or ``("raised", exception)``
(:meth:`~radarlib.pipeline.workers.ConversionPool.call`, e.g. the product stage's jobs;
a result that cannot be pickled comes back as a raised error). The frames travel on a
private copy of file descriptor 1; descriptor 1 itself is pointed at stderr so that a
converter's ``print`` cannot corrupt the protocol.

The worker ends when its parent goes away, however that happens: end of file on stdin (read
by a thread, also while a conversion runs) exits at once, and on Linux the kernel sends it
SIGKILL when the parent dies (``PR_SET_PDEATHSIG``), checked against the parent's pid given
in :data:`PARENT_ENV` so a parent that died during start-up is noticed too. SIGINT is
ignored: Ctrl-C in a terminal reaches the whole process group, and the daemon decides.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import queue
import signal
import struct
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

__all__ = ["PARENT_ENV", "main", "read_frame", "write_frame"]

#: environment variable holding the pid of the process that started the worker
PARENT_ENV = "RADARLIB_WORKER_PARENT"

_HEADER = struct.Struct(">Q")


def write_frame(stream: IO[bytes], message: Any) -> None:
    """Write one length-prefixed pickle to a binary stream and flush it."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(body)) + body)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> Any:
    """Read one frame; :class:`EOFError` when the stream ends (the other side is gone)."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        raise EOFError("the other side closed the pipe")
    body = _read_exactly(stream, _HEADER.unpack(header)[0])
    if body is None:
        raise EOFError("the pipe closed in the middle of a message")
    return pickle.loads(body)  # our own parent, private pipe


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when its parent dies; exit if it is already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    expected = os.environ.get(PARENT_ENV, "")
    if expected.isdigit() and os.getppid() != int(expected):
        os._exit(0)  # the parent died before the death signal was armed


def _read_requests(stream: IO[bytes], inbox: queue.Queue[Any]) -> None:
    """Thread: hand requests to the main thread; exit the process when the parent goes away."""
    while True:
        try:
            inbox.put(read_frame(stream))
        except BaseException:  # EOF, broken pipe, garbage: the parent is gone or confused
            os._exit(0)


def _reply_to_call(
    replies: IO[bytes], target: str, args: Any, run_call: Callable[..., tuple[str, Any]]
) -> None:
    """Answer a ``call`` request; a result that cannot be pickled is reported, not fatal."""
    reply = run_call(target, tuple(args))
    try:
        write_frame(replies, reply)  # pickles first: nothing is written if that fails
    except Exception as exc:
        error = RuntimeError(f"{target}: its result cannot be sent back from the worker: {exc}")
        write_frame(replies, ("raised", error))


def main() -> int:
    """Serve requests until stdin closes."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("PYART_QUIET", "1")
    # No bare stderr output from workers: what a conversion has to say comes back in its
    # outcome (warnings, error, traceback) and the daemon logs it with the volume id.
    logging.getLogger("radarlib").addHandler(logging.NullHandler())
    logging.getLogger("radarlib").propagate = False
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in a converter goes to stderr, never into the protocol
    requests = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)

    init = read_frame(requests)
    for entry in reversed(init.get("sys_path", [])):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    from radarlib.pipeline.workers import preload_converter, run_call, run_job

    preload_converter(str(init.get("converter", "")))
    write_frame(replies, ("ready", os.getpid()))
    inbox: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_read_requests, args=(requests, inbox), daemon=True).start()
    while True:
        request = inbox.get()
        if request[0] == "ping":
            write_frame(replies, ("pong", os.getpid()))
        elif request[0] == "job":
            write_frame(replies, ("outcome", run_job(request[1])))
        elif request[0] == "call":
            _reply_to_call(replies, request[1], request[2], run_call)
        else:
            write_frame(replies, ("error", f"unknown request {request[0]!r}"))


if __name__ == "__main__":
    sys.exit(main())
