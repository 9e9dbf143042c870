"""A real browser for the console's tests: Playwright driving Debian's chromium.

Playwright's own browser download cannot work here, so the browser is the system's
(``GUILDHALL_TEST_CHROMIUM``, else ``chromium`` on the PATH). Without one the browser
tests are skipped, saying what to install; under ``CI=true`` that is a failure.

Screenshots of the pages a test visits go to ``GUILDHALL_TEST_SCREENSHOTS`` (default:
``var/screenshots`` in the checkout); the README's pictures are chosen from them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = Path(os.environ.get("GUILDHALL_TEST_SCREENSHOTS", ROOT / "var" / "screenshots"))


def chromium_path() -> str:
    found = os.environ.get("GUILDHALL_TEST_CHROMIUM") or shutil.which("chromium")
    if not found:
        message = (
            "no chromium for the browser tests: install Debian's (apt install chromium) "
            "or set GUILDHALL_TEST_CHROMIUM"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
