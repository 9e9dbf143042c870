"""A platform library that is an optional extra, missing: the start stops with one
sentence saying what to install."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from guildhall.config import ConfigError, load_settings
from guildhall.runtime import Runtime


@pytest.mark.parametrize(
    ("module", "settings", "sentence"),
    [
        (
            "libvirt",
            {
                "hosting": {
                    "libvirt": {"uri": "test:///default", "base_images": {"debian-12": "d.qcow2"}},
                    "plans": {"VM": {"driver": "libvirt", "image": "debian-12"}},
                }
            },
            "The libvirt hosting driver needs libvirt's Python binding: install the system "
            "library's development package (Debian: apt install libvirt-dev pkg-config), then "
            "pip install 'guildhall[libvirt]'.",
        ),
        (
            "neonize",
            {"sessions": {"connector": "whatsapp"}},
            "The WhatsApp connector needs the neonize library: pip install 'guildhall[whatsapp]'.",
        ),
    ],
    ids=["libvirt plan", "whatsapp connector"],
)
async def test_a_feature_whose_library_is_missing_stops_the_start_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    module: str,
    settings: dict[str, Any],
    sentence: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    runtime = Runtime(load_settings(None, data_dir=str(tmp_path), **settings))
    with pytest.raises(ConfigError) as refused:
        await runtime.prepare()
    await runtime.close()
    assert str(refused.value) == sentence


async def test_the_whatsapp_connector_keeps_its_stores_where_the_settings_say(
    tmp_path: Path,
) -> None:
    """``[sessions.whatsapp] store_dir``: empty is ``data_dir/whatsapp``; a path is taken
    as given. ``reconnect_max_seconds`` bounds the core's reconnect delays."""
    default = Runtime(
        load_settings(None, data_dir=str(tmp_path / "a"), sessions={"connector": "whatsapp"})
    )
    chosen = Runtime(
        load_settings(
            None,
            data_dir=str(tmp_path / "b"),
            sessions={
                "connector": "whatsapp",
                "whatsapp": {"store_dir": str(tmp_path / "stores"), "reconnect_max_seconds": 30},
            },
        )
    )
    try:
        assert default.sessions.connector.name == "whatsapp"
        assert default.sessions.connector.store_dir == (tmp_path / "a" / "whatsapp").resolve()  # type: ignore[attr-defined]
        assert chosen.sessions.connector.store_dir == tmp_path / "stores"  # type: ignore[attr-defined]
        assert chosen.settings.sessions.whatsapp.reconnect_max_seconds == 30
    finally:
        await default.close()
        await chosen.close()
