"""The installation's master secret, and what is derived from it.

One secret per installation: ``secret_key`` in the configuration, or, when
none is set, 32 random bytes generated on first start and kept in
``<data_dir>/secret.key`` (mode 0600). There is never a built-in default.
Several machines serving one PostgreSQL database must share the secret, so
they set ``secret_key`` (or copy the file).

Each use gets its own key derived with HKDF-SHA256 and a purpose label, so
the key that seals session backups never signs a token, and vice versa.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from guildhall import filemodes
from guildhall.config import ConfigError, Settings

SECRET_FILE = "secret.key"
MIN_SECRET_LENGTH = 32


class UnsealError(Exception):
    """Sealed data that this installation's secret cannot open (wrong key or tampered)."""


def _load_or_create(path: Path) -> bytes:
    try:
        secret = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ConfigError(f"The secret file {path} cannot be read: {exc}.") from None
    else:
        filemodes.tighten(path, filemodes.PRIVATE_FILE)  # an older installation's 0644
        return secret
    filemodes.private_directory(path.parent)
    secret = secrets.token_bytes(32)
    try:
        # O_EXCL: when two processes start at once, one writes and the other reads.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secret.hex() + "\n")
    return secret


def master_secret(settings: Settings) -> bytes:
    if settings.secret_key:
        if len(settings.secret_key) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"secret_key must be at least {MIN_SECRET_LENGTH} characters; "
                "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        return settings.secret_key.encode()
    return _load_or_create(settings.data_dir / SECRET_FILE)


class Secrets:
    """Purpose-bound keys derived from the master secret."""

    def __init__(self, master: bytes) -> None:
        self._master = master

    def derive(self, purpose: str, length: int = 32) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
        return hkdf.derive(self._master)

    def sealer(self, purpose: str) -> Sealer:
        return Sealer(self.derive(purpose))


class Sealer:
    """Authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) with one derived key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise UnsealError("sealed data does not open with this installation's secret") from None
