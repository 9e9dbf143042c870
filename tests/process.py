"""Running Guildhall the way an operator does: real processes, real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from guildhall.faces import FACES

READY_LINE = "Press Ctrl-C to stop."


def processes_in(workdir: Path) -> list[int]:
    """Live processes whose working directory is ``workdir``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if cwd == str(workdir) and state not in ("Z", "X"):
            found.append(int(entry))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower()


def write_config(
    directory: Path,
    database_url: str,
    *,
    filename: str = "guildhall.toml",
    top: dict[str, object] | None = None,
    tables: dict[str, dict[str, object]] | None = None,
    **faces: dict[str, object],
) -> Path:
    """A config file with its own data directory, the given face sections, top-level
    settings (``top``) and other tables (``tables``, by dotted name)."""
    lines = [f'data_dir = "{directory / "var"}"']
    if not database_url.startswith("sqlite"):
        lines.append(f'database_url = "{database_url}"')
    lines += [f"{key} = {_toml(value)}" for key, value in (top or {}).items()]
    # Faces a test does not name listen on a free port, never on a default one.
    sections = {f"faces.{name}": {"port": 0} for name in FACES} | {"console": {"port": 0}}
    sections |= {f"faces.{name}": values for name, values in faces.items()}
    sections |= tables or {}
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    path = directory / filename
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUILDHALL_")}
    env["GUILDHALL_CONFIG"] = str(config)
    return env


def guildhall(
    config: Path, *args: str, check: bool = True, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one ``guildhall`` command to completion (``input_text`` on its stdin)."""
    result = subprocess.run(
        [sys.executable, "-m", "guildhall", *args],
        env=cli_env(config),
        capture_output=True,
        text=True,
        timeout=60,
        input=input_text,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"guildhall {' '.join(args)} failed:\n{result.stderr}")
    return result


def last_line(output: str) -> str:
    return output.strip().splitlines()[-1].strip()


def _keep(stream: IO[str], lines: list[str]) -> None:
    """Every line of ``stream`` until the process closes it; then close our end."""
    with stream:
        lines.extend(stream)


@dataclass
class Served:
    """A ``guildhall serve`` process and what it printed on start.

    Once it is ready, what it prints is read as it comes (``listen``), so a long run
    whose server logs a lot never stops it on a full pipe; ``output`` returns it all.
    """

    process: subprocess.Popen[str]
    config: Path
    banner: list[str] = field(default_factory=list)
    _printed: dict[str, list[str]] = field(default_factory=lambda: {"out": [], "err": []})
    _readers: list[threading.Thread] = field(default_factory=list)

    def listen(self) -> None:
        """Read the rest of stdout and stderr in the background, keeping it."""
        for name, stream in (("out", self.process.stdout), ("err", self.process.stderr)):
            if stream is None:
                continue
            reader = threading.Thread(target=_keep, args=(stream, self._printed[name]), daemon=True)
            reader.start()
            self._readers.append(reader)

    @property
    def demo_key(self) -> str:
        for line in self.banner:
            if line.startswith("Demo API key"):
                return line.rsplit(" ", 1)[-1]
        raise AssertionError(f"no demo key in {self.banner}")

    def base_url(self, face: str) -> str:
        """The face's base URL as the banner gives it: as its clients use it."""
        for line in self.banner:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == face and parts[1].startswith("http://"):
                return parts[1]
        raise AssertionError(f"no {face} URL in {self.banner}")

    def url(self, face: str) -> str:
        """Where the face listens: ``scheme://host:port``, without the base path."""
        return self.base_url(face).removesuffix("/api")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def output(self) -> str:
        """All it printed: the banner, then the rest of stdout, then stderr."""
        assert self.process.poll() is not None
        for reader in self._readers:
            reader.join(timeout=30)
        out, err = "".join(self._printed["out"]), "".join(self._printed["err"])
        return "\n".join(self.banner) + out + err


def serve(config: Path, *args: str, timeout: float = 60) -> Served:
    """Start ``guildhall serve`` and wait until it says it is ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "guildhall", "serve", *args],
        env=cli_env(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process, config)
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            _out, err = process.communicate()
            raise AssertionError(f"guildhall serve exited early:\n{served.banner}\n{err}")
        served.banner.append(line.rstrip("\n"))
        if line.strip() == READY_LINE:
            served.listen()
            return served
    process.kill()
    raise AssertionError(f"guildhall serve not ready after {timeout}s: {served.banner}")
