"""scripts/bootstrap tells a newcomer what it is doing before the quiet install.

The install itself is pip's business (and needs the network), so the
environment's interpreter here is a stand-in that records what it is asked
to run and says so on stderr: the order of the lines is what a person at the
terminal sees.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# libvirt's binding comes along where its system library is (it builds against it).
HAS_LIBVIRT = (
    shutil.which("pkg-config") is not None
    and subprocess.run(["pkg-config", "--exists", "libvirt"], check=False).returncode == 0
)
EXTRAS = "test,libvirt" if HAS_LIBVIRT else "test"

STAND_IN = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/../calls.log"
echo "(pip ran: $*)" >&2
"""


def _checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "bootstrap", tmp_path / "scripts" / "bootstrap")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "guildhall"\n')
    interpreter = tmp_path / ".venv" / "bin" / "python"
    interpreter.parent.mkdir(parents=True)
    interpreter.write_text(STAND_IN)
    interpreter.chmod(0o755)
    return tmp_path


def _bootstrap(checkout: Path) -> list[str]:
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "bootstrap")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == ""
    return done.stderr.splitlines()


def test_the_first_start_says_what_it_installs_and_how_long_before_installing(
    tmp_path: Path,
) -> None:
    lines = _bootstrap(_checkout(tmp_path))
    assert lines[0] == (
        "First start: installing Guildhall and its test tools into .venv (about a minute)..."
    )
    assert lines[1].startswith("(pip ran: -m pip install")
    assert lines[-1] == "Installed."
    calls = (tmp_path / ".venv" / "calls.log").read_text().splitlines()
    assert calls[-1] == f"-m pip install --quiet -e .[{EXTRAS}]"


def test_a_second_start_installs_nothing_and_says_nothing(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    _bootstrap(checkout)
    calls = (checkout / ".venv" / "calls.log").read_text()
    assert _bootstrap(checkout) == []
    assert (checkout / ".venv" / "calls.log").read_text() == calls


def test_a_changed_pyproject_is_named_as_the_reason_for_updating(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    _bootstrap(checkout)
    later = time.time() + 5
    os.utime(checkout / "pyproject.toml", (later, later))
    lines = _bootstrap(checkout)
    assert lines[0] == "pyproject.toml changed: updating Guildhall in .venv (under a minute)..."
    assert lines[-1] == "Installed."


def test_an_old_python_is_refused_with_what_to_set(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\nexit 1\n")  # what `python -c 'sys.exit(version < 3.11)'` gives
    old.chmod(0o755)
    done = subprocess.run(
        ["bash", str(checkout / "scripts" / "bootstrap")],
        env={**os.environ, "PYTHON": str(old)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "Guildhall needs Python 3.11 or newer; set PYTHON=/path/to/python3.11."
    )
    assert not (checkout / ".venv" / "calls.log").exists()
