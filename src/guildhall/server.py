"""Builds each face's ASGI app and runs all their listeners in one command.

The parent process binds every listening socket first (so a port in use is
reported before anything starts), then serves them itself or, with
``--workers N``, hands the same sockets to N worker processes, the way
uvicorn's own multi-process mode does. The sockets are never inheritable:
``multiprocessing``'s spawn passes each one to a worker explicitly (its
``pass_fds``), so no other program started from here (a hosted server above
all) can keep a port after Guildhall stops.

Signals are ours, not uvicorn's: several uvicorn servers share one event
loop here, and uvicorn would re-raise a captured SIGTERM once its own
server stopped, killing the others mid-request. On SIGTERM or SIGINT every
server stops accepting, lets in-flight requests finish, and the process
closes the database before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from guildhall.config import ConfigError, Settings
from guildhall.faces import CONSOLE, FACES, app_for
from guildhall.http_protocol import RefusalHeaders, protocol_for
from guildhall.runtime import Runtime

GRACEFUL_SHUTDOWN_SECONDS = 30

EVERY_RESPONSE_HEADERS = [("X-Content-Type-Options", "nosniff")]
"""Headers uvicorn adds to every response of every face, its own 400s and the 408s of
http_protocol.py included: no browser may guess a type other than the one sent."""

MIN_EXPOSED_KEY_LENGTH = 24
"""A static key (Heliactyl's ``api_code``, LD7's and Aurora's ``api_key``) is
checked only for equality, so off loopback it must be long enough that no one
guesses it; on loopback short keys stay allowed (local tools, the demo)."""

logger = logging.getLogger(__name__)
_serving_face: ContextVar[str | None] = ContextVar("serving_face", default=None)


@dataclass(frozen=True)
class Listener:
    face: str
    host: str
    port: int


def plan_listeners(settings: Settings, only: Sequence[str] = ()) -> list[Listener]:
    """The enabled faces and the console (or just ``only``), each with its address."""
    unknown = [name for name in only if name not in FACES and name != CONSOLE]
    if unknown:
        raise ConfigError(f"Unknown face {unknown[0]!r} (known faces: {', '.join(FACES)}).")
    listeners = []
    for name in FACES:
        face = getattr(settings.faces, name)
        if (only and name not in only) or (not only and not face.enabled):
            continue
        if face.keyless and not face.on_loopback:
            raise ConfigError(
                f"The {name} face has no API key, so it may listen only on a loopback address; "
                f"set [faces.{name}] api_key or listen on 127.0.0.1 instead of {face.host}."
            )
        if not face.on_loopback:
            for setting, key in face.static_keys.items():
                if key and len(key) < MIN_EXPOSED_KEY_LENGTH:
                    raise ConfigError(
                        f"faces.{name}.{setting} is shorter than {MIN_EXPOSED_KEY_LENGTH} "
                        f"characters, and the face listens on {face.host} where anyone can try "
                        "keys until one fits; set a longer one (`openssl rand -hex 24` makes one)."
                    )
        listeners.append(Listener(name, face.host, face.port))
    console = settings.console
    if (only and CONSOLE in only) or (not only and console.enabled):
        listeners.append(Listener(CONSOLE, console.host, console.port))
    if not listeners:
        raise ConfigError("No face is enabled; enable one under [faces.<name>].")
    return listeners


def plain_http_warning(settings: Settings, listeners: Sequence[Listener]) -> str | None:
    """A sentence for the operator when the console takes passwords over plain HTTP from
    other machines: off loopback, with no TLS proxy in front named in trusted_proxies."""
    if settings.console.on_loopback or settings.trusted_proxies:
        return None
    for listener in listeners:
        if listener.face == CONSOLE:
            return (
                f"Warning: the console listens on {listener.host} over plain HTTP: "
                "passwords and session cookies cross the network in clear. Put it behind "
                "a TLS proxy (and name it in trusted_proxies) or listen on 127.0.0.1."
            )
    return None


SHARE_PORTS = hasattr(socket, "SO_REUSEPORT")
"""Whether each worker can listen on a port of its own socket (Linux, the BSDs)."""


def bind(listeners: Sequence[Listener], *, workers: int = 1) -> list[socket.socket]:
    """Open every listening socket, or close them all and say which port failed.

    For several workers the sockets allow others on the same port (``SO_REUSEPORT``),
    so that each worker can have its own (``worker_sockets``); a plain socket bound
    first checks that nothing else listens there, as it would for one worker.
    """
    sockets: list[socket.socket] = []
    try:
        for listener in listeners:
            address = (listener.host, listener.port)
            if workers > 1 and SHARE_PORTS:
                with _listening_socket(listener, address, share=False, listen=False) as probe:
                    address = probe.getsockname()[:2]  # the port the kernel chose for 0
                sockets.append(_listening_socket(listener, address, share=True))
            else:
                sockets.append(_listening_socket(listener, address, share=False))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def worker_sockets(
    listeners: Sequence[Listener], sockets: Sequence[socket.socket], workers: int
) -> list[list[socket.socket]]:
    """Each worker's listening sockets: the first worker's are ``sockets``, the others
    get sockets of their own on the same ports.

    Workers sharing one socket do not share its connections: a worker's event loop
    accepts every connection waiting when it wakes, so one worker took all 50 of a
    client's keep-alive connections, or 36 of them, and served them alone while the
    other idled. With a socket each, the kernel spreads new connections over the
    workers. Without ``SO_REUSEPORT`` they share ``sockets``.
    """
    if workers <= 1 or not SHARE_PORTS:
        return [list(sockets) for _ in range(max(workers, 1))]
    own = [list(sockets)]
    try:
        for _ in range(workers - 1):
            own.append([])
            for listener, sock in zip(listeners, sockets, strict=True):
                own[-1].append(_listening_socket(listener, sock.getsockname()[:2], share=True))
    except BaseException:
        for extra in own[1:]:
            for sock in extra:
                sock.close()
        raise
    return own


def _listening_socket(
    listener: Listener, address: tuple[str, int], *, share: bool, listen: bool = True
) -> socket.socket:
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"Port {listener.port} on {listener.host} ({listener.face} face) "
                    "is already in use."
                ) from None
            raise ConfigError(
                f"Cannot listen on {listener.host}:{listener.port} "
                f"({listener.face} face): {exc.strerror}."
            ) from None
        if listen:
            # Accepted connections inherit this: a response's head and body go
            # out at once instead of waiting on delayed ACKs.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def url_of(listener: Listener, sock: socket.socket) -> str:
    host = f"[{listener.host}]" if ":" in listener.host else listener.host
    return f"http://{host}:{sock.getsockname()[1]}"


class _NamesTheFace(logging.Filter):
    """uvicorn's own lines, logged from a face's server, name that face.

    Five servers share one process, so an anonymous "Shutting down" says
    nothing; its start and stop lines give way to the face's own, which
    name the face and its address (see :class:`_FaceServer`).
    """

    REPLACED = frozenset(
        {"Started server process [%d]", "Finished server process [%d]", "Shutting down"}
    )

    def filter(self, record: logging.LogRecord) -> bool:
        face = _serving_face.get()
        if face is None:
            return True
        if record.msg in self.REPLACED:
            return False
        record.msg = f"{face} face: {record.msg}"
        return True


def log_config(settings: Settings) -> dict[str, Any]:
    """uvicorn's logging, plus Guildhall's own loggers on the same stream and format."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"face": {"()": _NamesTheFace}}
    config["loggers"]["uvicorn.error"]["filters"] = ["face"]
    config["loggers"]["guildhall"] = {
        "handlers": ["default"],
        "level": settings.log_level.upper(),
        "propagate": False,
    }
    return config


class _FaceServer(uvicorn.Server):
    """A uvicorn server for one face, leaving signal handling to :func:`serve_sockets`."""

    def __init__(self, config: uvicorn.Config, face: str, url: str) -> None:
        super().__init__(config)
        self.face = face
        self.url = url

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        _serving_face.set(self.face)  # this task's own context: its log lines name the face
        await super().serve(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            logger.info("%s face listening on %s (process %d)", self.face, self.url, os.getpid())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        logger.info("%s face stopped (process %d)", self.face, os.getpid())


async def serve_sockets(
    settings: Settings,
    listeners: Sequence[Listener],
    sockets: Sequence[socket.socket],
) -> None:
    """Serve every face on its socket in this process until SIGTERM or SIGINT."""
    runtime = Runtime(settings)
    servers: list[tuple[_FaceServer, socket.socket]] = []
    protocol = protocol_for(settings.http)
    refusal_headers = [(k.lower().encode(), v.encode()) for k, v in EVERY_RESPONSE_HEADERS]
    for listener, sock in zip(listeners, sockets, strict=True):
        config = uvicorn.Config(
            RefusalHeaders(app_for(listener.face, runtime), refusal_headers),
            http=protocol,
            headers=EVERY_RESPONSE_HEADERS,
            lifespan="off",
            log_config=log_config(settings),
            access_log=False,  # Guildhall's own, naming the face: faces/common/app.py
            log_level=settings.log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            server_header=False,
            # Forwarded headers are believed only from trusted_proxies, by the
            # faces themselves (faces/common/clients.py), never by uvicorn.
            proxy_headers=False,
        )
        servers.append((_FaceServer(config, listener.face, url_of(listener, sock)), sock))

    def stop() -> None:
        for server, _sock in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    try:
        await runtime.start({listener.face for listener in listeners})
        _settle_heap()
        await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in servers))
    finally:
        await runtime.close()


YOUNG_COLLECTION_THRESHOLD = 20_000
"""Allocations between two young collections (Python's default is 700)."""


def _settle_heap() -> None:
    """Keep the garbage collector's passes short and rare while serving.

    What exists once the apps are built (modules, SQLAlchemy's metadata,
    the routes: most of the heap) lives as long as the process, yet a full
    collection walked all of it: about 150 ms here, stalling every request,
    about once a second under load, because objects of in-flight requests
    survive the young collections. Frozen, it is left out of every pass.

    A young collection's cost is mostly the objects of the requests in
    flight, which it walks and keeps each time; Python's default starts one
    every 700 allocations, several per request. Measured under load at 50
    connections, starting one every 20,000 cut the collector's time from
    670 ms to 180 ms per 30 s, and its pauses from 1,700 to 360.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def _run_loop(
    settings: Settings, listeners: Sequence[Listener], sockets: Sequence[socket.socket]
) -> None:
    for sock in sockets:
        # A worker receives its sockets inheritable; nothing it starts may keep them.
        sock.set_inheritable(False)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(serve_sockets(settings, listeners, sockets))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve_sockets(settings, listeners, sockets))


def run(
    settings: Settings,
    listeners: Sequence[Listener],
    sockets: Sequence[socket.socket],
    workers: int,
) -> None:
    """Serve in this process, or in ``workers`` child processes sharing the sockets."""
    if workers <= 1:
        _run_loop(settings, listeners, sockets)
        return
    context = multiprocessing.get_context("spawn")
    each = worker_sockets(listeners, sockets, workers)
    processes = [
        context.Process(target=_run_loop, args=(settings, listeners, own), daemon=False)
        for own in each
    ]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for process in processes:
            if process.pid is not None and process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    previous: dict[signal.Signals, Any] = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, forward)
    try:
        for process, own in zip(processes, each, strict=True):
            process.start()
            if SHARE_PORTS:
                # The worker holds its own now. Should it die, the kernel stops
                # sending it connections only once no process has them open.
                for sock in own:
                    sock.close()
        for process in processes:
            process.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for own in each[1:]:
            for sock in own:
                sock.close()  # those of workers that never started
    failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        sys.exit(1)
