"""Who may read the installation's files: its owner only.

The data directory holds the database (password hashes, API key hashes,
sealed secrets, everything the faces serve) and the installation secret, so
the directory is made 0700 and those files 0600, whatever the umask. SQLite
gives its ``-wal`` and ``-shm`` files the database file's own mode, so making
the database file before SQLite does is enough for new installations.

An installation made before this rule (a 0755 directory, 0644 files) is
tightened where the files are opened (the engine, the secret, the runtime's
start), with one warning line per path, so the operator learns that others
could read them until then. Modes are only ever narrowed, never widened; a
path the process may not change (another user's) is left with a warning.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600

logger = logging.getLogger(__name__)


def tighten(path: Path, allowed: int) -> bool:
    """Drop the permission bits of ``path`` that ``allowed`` lacks; True if any went.
    A missing path is left missing."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return False
    narrowed = current & allowed
    if narrowed == current:
        return False
    try:
        os.chmod(path, narrowed)
    except OSError as exc:
        logger.warning("%s is mode %04o and could not be made private: %s", path, current, exc)
        return False
    logger.warning(
        "Tightened %s from mode %04o to %04o: only its owner may read Guildhall's data.",
        path,
        current,
        narrowed,
    )
    return True


def private_directory(path: Path, *, tighten_existing: bool = True) -> None:
    """Make ``path`` 0700 (missing parents as ``mkdir -p`` makes them); an existing one
    is tightened unless ``tighten_existing`` is False: the folder of a database file
    configured elsewhere (``/tmp``, say) is not Guildhall's to change."""
    try:
        path.mkdir(mode=PRIVATE_DIRECTORY, parents=True)
    except FileExistsError:
        if tighten_existing:
            tighten(path, PRIVATE_DIRECTORY)


def private_file(path: Path) -> None:
    """Make ``path`` empty and 0600 if it does not exist (before another library makes
    it with its own mode); an existing one is tightened, its content untouched."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path, PRIVATE_FILE)
    else:
        os.close(descriptor)
