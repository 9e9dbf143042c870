"""The ``process`` hosting driver: each server is an operating-system process.

A server runs its plan's command (split like a shell would, but run without
one) in its own working directory, in a new session, so signals reach the
whole process group and a Guildhall restart leaves it running. Its handle is
``pid:start-time`` read from ``/proc``: a pid the kernel reused for another
program is never taken for the server. Linux only.

A server inherits nothing but its own stdio (``/dev/null`` in, its
``console.log`` out): no listening socket, no database file, no pipe of
ours, or it would keep Guildhall's ports after Guildhall stops. It is
started by the standard library's ``subprocess.Popen``, whose
``close_fds`` closes every other descriptor in the child before ``exec``,
not by the event loop: uvloop's subprocess ignores ``close_fds`` and even
leaks its own copies of the stdio descriptors.

A server this driver started is reaped as soon as it ends (the loop watches
a pidfd of it), so it never lingers as a zombie; one started by an earlier
Guildhall process was re-parented and is watched through ``/proc`` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from guildhall.core.hosting.driver import DriverError, ServerSpec

POLL_SECONDS = 0.05
KILL_WAIT_SECONDS = 5


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rpartition(")")[2].split()
    state, start = fields[0], fields[19]
    return None if state in ("Z", "X") else start


def _parse(runtime_ref: str | None) -> tuple[int, str] | None:
    if not runtime_ref:
        return None
    pid, _, start = runtime_ref.partition(":")
    return (int(pid), start) if pid.isdecimal() and start else None


def _spawn(argv: list[str], workdir: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start the operator's command with its stdio and no other descriptor of ours.

    Called on the event loop: a vfork and an exec take well under a millisecond,
    and a thread would leave the child unwatched if the request were cancelled.
    """
    with log.open("ab") as output:
        return subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _reap_when_done(child: subprocess.Popen[bytes]) -> None:
    """Collect the child's exit status as soon as it ends, so no zombie is left behind."""
    try:
        pidfd = os.pidfd_open(child.pid)
    except OSError:  # pragma: no cover - Linux before 5.3: reaped when next looked at
        return
    loop = asyncio.get_running_loop()

    def ended() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        child.poll()

    loop.add_reader(pidfd, ended)


class ProcessDriver:
    name = "process"
    judges_transitions = False
    polled = False

    def __init__(self, *, start_check: float = 0.3) -> None:
        self._start_check = start_check
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    async def open(self) -> None:
        """Nothing to connect to: a process's state is read from ``/proc`` when asked."""

    async def close(self) -> None:
        """Servers keep running after Guildhall stops (see the module notes)."""

    async def refresh(self, runtime_refs: list[str]) -> None:
        """Nothing to learn ahead: ``is_running`` looks at ``/proc`` each time."""

    def ip_address(self, spec: ServerSpec) -> str:
        return "127.0.0.1"

    async def provision(self, spec: ServerSpec) -> str | None:
        return None  # a process exists only while it runs

    async def stop(self, runtime_ref: str, grace: float) -> None:
        """SkyPANEL's ``stop`` of a process ends it at once (``shutdown`` is the gentle one)."""
        await self.kill(runtime_ref)

    async def restart(self, spec: ServerSpec, runtime_ref: str, grace: float) -> str:
        await self.shutdown(runtime_ref, grace)
        return await self.start(spec, None)

    async def remove(self, runtime_ref: str | None, public_id: str = "") -> None:
        if runtime_ref and self.is_running(runtime_ref):
            await self.kill(runtime_ref)

    def _alive(self, pid: int, start: str) -> bool:
        child = self._children.get(pid)
        if child is not None and child.poll() is not None:
            del self._children[pid]  # reaped: it died by itself or was ended
            return False
        return _start_time(pid) == start

    def is_running(self, runtime_ref: str | None) -> bool:
        parsed = _parse(runtime_ref)
        return parsed is not None and self._alive(*parsed)

    async def start(self, spec: ServerSpec, runtime_ref: str | None = None) -> str:
        try:
            argv = shlex.split(spec.command)
        except ValueError as exc:
            raise DriverError(f"the plan's command cannot be read: {exc}") from None
        spec.workdir.mkdir(parents=True, exist_ok=True)
        log = spec.workdir / "console.log"
        try:
            child = _spawn(argv, spec.workdir, log)
        except OSError as exc:
            raise DriverError(f"the command could not be started: {exc.strerror}") from None
        self._children[child.pid] = child
        start = _start_time(child.pid)
        _reap_when_done(child)
        await asyncio.sleep(self._start_check)
        if start is None or child.poll() is not None:
            self._children.pop(child.pid, None)
            code = await asyncio.to_thread(child.wait)
            raise DriverError(f"the server exited at once with code {code}")
        return f"{child.pid}:{start}"

    async def _wait_gone(self, pid: int, start: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._alive(pid, start):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_SECONDS)
        return True

    def _signal(self, pid: int, start: str, signum: int) -> None:
        if not self._alive(pid, start):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signum)  # the server's whole process group (its session)

    async def shutdown(self, runtime_ref: str, grace: float) -> None:
        parsed = _parse(runtime_ref)
        if parsed is None:
            return
        self._signal(*parsed, signal.SIGTERM)
        if not await self._wait_gone(*parsed, grace):
            await self.kill(runtime_ref)

    async def kill(self, runtime_ref: str) -> None:
        parsed = _parse(runtime_ref)
        if parsed is None:
            return
        self._signal(*parsed, signal.SIGKILL)
        if not await self._wait_gone(*parsed, KILL_WAIT_SECONDS):
            raise DriverError(f"process {parsed[0]} did not end after SIGKILL")
