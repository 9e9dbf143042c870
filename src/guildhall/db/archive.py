"""The backup file: a framed, optionally encrypted, checksummed container.

Layout::

    MAGIC | mode (1 byte: 0 plain, 1 encrypted) | salt (16) | check (16)
    chunk*: length (4, big-endian, > 0) | data
    end:    length 0 | SHA-256 of the whole plain body (32)

Encrypted, each chunk's data is AES-256-GCM of up to 1 MiB of the body,
with a key derived from the passphrase by scrypt; the nonce counts chunks
and the associated data binds the header, so chunks cannot be reordered or
moved between files. ``check`` (derived from the key) tells a wrong
passphrase from a damaged file before anything is written. A file that
stops before the end marker is truncated, whatever its chunks said; one whose
digest or tags do not match is corrupted. Plain, the digest alone guards it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"GUILDHALL-BACKUP-1\n"
CHUNK = 1 << 20
_LENGTH = struct.Struct(">I")


class ArchiveError(Exception):
    """The file cannot be read back; the message says why, for the operator."""


def _key(passphrase: bytes, salt: bytes) -> tuple[bytes, bytes]:
    derived = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase)
    check = hmac.new(derived, b"guildhall backup passphrase check", hashlib.sha256).digest()
    return derived, check[:16]


def _nonce(index: int) -> bytes:
    return struct.pack(">4xQ", index)


def seal(body: Path, target: BinaryIO, passphrase: bytes | None) -> None:
    """Frame (and encrypt, given a passphrase) the file ``body`` into ``target``."""
    salt = os.urandom(16) if passphrase else bytes(16)
    key, check = _key(passphrase, salt) if passphrase else (b"", bytes(16))
    header = MAGIC + bytes([1 if passphrase else 0]) + salt + check
    target.write(header)
    cipher = AESGCM(key) if passphrase else None
    digest = hashlib.sha256()
    with body.open("rb") as source:
        index = 0
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            data = cipher.encrypt(_nonce(index), chunk, header) if cipher else chunk
            target.write(_LENGTH.pack(len(data)) + data)
            index += 1
    target.write(_LENGTH.pack(0) + digest.digest())


def is_encrypted(path: Path) -> bool:
    with path.open("rb") as source:
        head = source.read(len(MAGIC) + 1)
    if len(head) < len(MAGIC) + 1 or not head.startswith(MAGIC):
        raise ArchiveError(f"the file {path} is not a Guildhall backup")
    return head[-1] == 1


def open_body(path: Path, passphrase: bytes | None, target: Path) -> None:
    """Check ``path`` whole and write its plain body to ``target``; ArchiveError if not."""
    with path.open("rb") as source, target.open("wb") as out:
        for chunk in _chunks(source, passphrase, path):
            out.write(chunk)


def _chunks(source: BinaryIO, passphrase: bytes | None, path: Path) -> Iterator[bytes]:
    header = source.read(len(MAGIC) + 33)
    if len(header) < len(MAGIC) + 33 or not header.startswith(MAGIC):
        raise ArchiveError(f"the file {path} is not a Guildhall backup")
    encrypted, salt, check = header[len(MAGIC)] == 1, header[-32:-16], header[-16:]
    cipher = None
    if encrypted:
        if not passphrase:
            raise ArchiveError(
                f"the backup {path} is encrypted: give its passphrase (--passphrase-file)"
            )
        key, expected = _key(passphrase, salt)
        if not hmac.compare_digest(check, expected):
            raise ArchiveError("the passphrase is wrong for this backup")
        cipher = AESGCM(key)
    digest = hashlib.sha256()
    index = 0
    while True:
        raw = source.read(_LENGTH.size)
        if len(raw) < _LENGTH.size:
            raise ArchiveError(f"the backup {path} is truncated: it ends before its end marker")
        (length,) = _LENGTH.unpack(raw)
        if length == 0:
            stored = source.read(32)
            if len(stored) < 32:
                raise ArchiveError(f"the backup {path} is truncated: it ends before its end marker")
            if not hmac.compare_digest(stored, digest.digest()) or source.read(1):
                raise ArchiveError(f"the backup {path} is corrupted: its checksum does not match")
            return
        if length > CHUNK + 16:
            raise ArchiveError(f"the backup {path} is corrupted: a chunk claims {length} bytes")
        data = source.read(length)
        if len(data) < length:
            raise ArchiveError(f"the backup {path} is truncated: it ends in the middle of a chunk")
        if cipher is not None:
            try:
                data = cipher.decrypt(_nonce(index), data, header)
            except InvalidTag:
                raise ArchiveError(
                    f"the backup {path} is corrupted: chunk {index} fails its check"
                ) from None
        digest.update(data)
        index += 1
        yield data
