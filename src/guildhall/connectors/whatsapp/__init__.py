"""WhatsApp: real multi-device links through neonize (Go's whatsmeow, bound for Python).

``connector.WhatsAppConnector`` implements the core's ``MessagingConnector``.
neonize is an optional extra: ``load_neonize`` says in one sentence what to
install when it is missing, so a missing library stops the start with that
sentence instead of a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import subprocess
from collections.abc import Iterator
from types import ModuleType

from guildhall.config import ConfigError

MISSING = "The WhatsApp connector needs the neonize library: pip install 'guildhall[whatsapp]'."


@contextlib.contextmanager
def _popen_that_waits() -> Iterator[None]:
    """``os.popen`` as neonize's import uses it (``os.popen("uname -a").read()``), but
    waiting for the command and closing its pipe.

    The real one leaves the pipe open and the finished child to be reaped later, by
    whatever starts the next subprocess: the pipe then closes there with a
    ResourceWarning, far from its cause (the test suite, which treats warnings as
    errors, failed in an unrelated test that ran a command).
    """

    def waiting(command: str, mode: str = "r", buffering: int = -1) -> io.StringIO:
        argv = shlex.split(command)  # neonize's command needs no shell
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return io.StringIO(done.stdout)

    real = os.popen
    os.popen = waiting  # type: ignore[assignment]
    try:
        yield
    finally:
        os.popen = real


def load_neonize() -> ModuleType:
    """Import neonize (and its asyncio client) or say what to install."""
    try:
        with _popen_that_waits():
            # Optional: imported only when the WhatsApp connector is configured.
            import neonize
            import neonize.aioze.client
    except ImportError:
        raise ConfigError(MISSING) from None
    loaded: ModuleType = neonize
    return loaded
