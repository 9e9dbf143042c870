"""A platform library that is an optional extra, missing: the start stops with one
sentence saying what to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from guildhall.config import ConfigError, load_settings
from guildhall.runtime import Runtime


async def test_without_libvirts_binding_a_libvirt_plan_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "libvirt", None)  # as if the extra were not installed
    settings = load_settings(
        None,
        data_dir=str(tmp_path),
        hosting={
            "libvirt": {"uri": "test:///default", "base_images": {"debian-12": "d.qcow2"}},
            "plans": {"VM": {"driver": "libvirt", "image": "debian-12"}},
        },
    )
    runtime = Runtime(settings)
    with pytest.raises(ConfigError) as refused:
        await runtime.prepare()
    await runtime.close()
    assert str(refused.value) == (
        "The libvirt hosting driver needs libvirt's Python binding: install the system "
        "library's development package (Debian: apt install libvirt-dev pkg-config), then "
        "pip install 'guildhall[libvirt]'."
    )
