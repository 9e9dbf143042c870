"""The installation secret: generated once, kept private, never a built-in default."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from guildhall.config import ConfigError, load_settings
from guildhall.secrets import Secrets, UnsealError, master_secret


def test_a_secret_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=str(tmp_path / "var"))
    first = master_secret(settings)
    path = tmp_path / "var" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) == 32
    assert master_secret(settings) == first
    other = load_settings(None, data_dir=str(tmp_path / "elsewhere"))
    assert master_secret(other) != first


def test_a_configured_secret_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    configured = load_settings(None, data_dir=str(tmp_path), secret_key="s" * 40)
    assert master_secret(configured) == b"s" * 40
    assert not (tmp_path / "secret.key").exists()
    with pytest.raises(ConfigError, match="at least 32 characters"):
        master_secret(load_settings(None, data_dir=str(tmp_path), secret_key="short"))


def test_each_purpose_gets_its_own_key_and_sealed_data_is_tamper_evident() -> None:
    secrets = Secrets(b"m" * 32)
    assert secrets.derive("a") != secrets.derive("b")
    sealed = secrets.sealer("a").seal(b"login state")
    assert secrets.sealer("a").open(sealed) == b"login state"
    with pytest.raises(UnsealError):
        secrets.sealer("b").open(sealed)
    with pytest.raises(UnsealError):
        secrets.sealer("a").open(sealed[:-2] + b"AA")
