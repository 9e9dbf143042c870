"""One rule for where the settings and the data are, whatever folder a command runs in.

GUILDHALL_CONFIG (or --config), else ./guildhall.toml, else no file; the data
directory is GUILDHALL_DATA_DIR, else the file's data_dir (var beside it by
default), else (no file) the source checkout's var/, else the per-user
$XDG_DATA_HOME/guildhall.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import guildhall
from guildhall.config import checkout_root, load_settings
from tests.process import free_port, last_line, serve, write_config

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No file named, HOME and XDG_DATA_HOME in tmp; the working directory is a new folder."""
    monkeypatch.delenv("GUILDHALL_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return elsewhere


def test_without_a_file_a_checkout_keeps_its_data_in_its_var(no_config: Path) -> None:
    assert checkout_root() == REPO_ROOT
    settings = load_settings(None)
    assert settings.config_file is None
    assert settings.data_dir == REPO_ROOT / "var"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{REPO_ROOT}/var/guildhall.db"


def test_a_guildhall_toml_in_the_working_directory_is_read(no_config: Path) -> None:
    (no_config / "guildhall.toml").write_text(
        'data_dir = "state"\n[faces.heliactyl]\nport = 9300\n'
    )
    settings = load_settings(None)
    assert settings.config_file == no_config / "guildhall.toml"
    assert settings.data_dir == no_config / "state"
    assert settings.faces.heliactyl.port == 9300


def test_a_named_file_wins_and_without_data_dir_keeps_var_beside_it(
    no_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (no_config / "guildhall.toml").write_text("[faces.heliactyl]\nport = 9300\n")
    named = tmp_path / "etc" / "guildhall.toml"
    named.parent.mkdir()
    named.write_text("[faces.heliactyl]\nport = 9400\n")
    monkeypatch.setenv("GUILDHALL_CONFIG", str(named))
    settings = load_settings(None)
    assert settings.faces.heliactyl.port == 9400
    # The default data_dir = "var" is the file's, like any relative one: not the
    # working directory's.
    assert settings.data_dir == named.parent / "var"


def test_a_relative_data_dir_in_the_environment_is_fixed_when_read(
    no_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUILDHALL_DATA_DIR", "here")
    settings = load_settings(None)
    monkeypatch.chdir(no_config.parent)
    assert settings.data_dir == no_config / "here"
    assert settings.resolved_database_url.endswith(f"{no_config}/here/guildhall.db")


# ---- as an operator runs it -------------------------------------------------------


def _copy_package(target: Path) -> Path:
    """This Guildhall's package under ``target`` (no bytecode)."""
    source = Path(guildhall.__file__).resolve().parent
    shutil.copytree(source, target / "guildhall", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _environment(tmp_path: Path, import_root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUILDHALL_")}
    env.pop("XDG_DATA_HOME", None)
    env.update(PYTHONPATH=str(import_root), HOME=str(tmp_path / "home"), **extra)
    return env


def _guildhall(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "guildhall", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def _serve_heliactyl(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**env, "GUILDHALL_FACES__HELIACTYL__PORT": str(free_port())}
    process = subprocess.Popen(
        [sys.executable, "-m", "guildhall", "serve", "--face", "heliactyl"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = []
    for line in process.stdout:
        banner.append(line)
        if line.strip() == "Press Ctrl-C to stop.":
            return process, "".join(banner)
    _out, err = process.communicate()
    raise AssertionError(f"serve stopped: {''.join(banner)}{err}")


def _key_works(port_banner: str, key: str) -> bool:
    url = next(line.split()[1] for line in port_banner.splitlines() if "heliactyl" in line)
    answer = httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return answer.status_code == 200


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.communicate(timeout=60)


@pytest.mark.e2e
def test_a_key_made_in_another_folder_of_a_checkout_reaches_its_server(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    _copy_package(checkout / "src")
    shutil.copyfile(REPO_ROOT / "pyproject.toml", checkout / "pyproject.toml")
    env = _environment(tmp_path, checkout / "src")
    database = checkout / "var" / "guildhall.db"

    made = _guildhall(
        env,
        tmp_path / "somewhere" / "else",
        "keys",
        "create",
        "--name",
        "k",
        "--scope",
        "heliactyl",
    )
    assert made.stderr.splitlines()[0] == (
        f"Database: sqlite+aiosqlite:///{database} "
        f"(no configuration file; data directory {checkout / 'var'})"
    )
    assert database.is_file()
    # scripts/serve runs from the checkout's root: the same var/.
    process, banner = _serve_heliactyl(env, checkout)
    try:
        assert f"on sqlite+aiosqlite:///{database}" in banner
        assert _key_works(banner, last_line(made.stdout))
    finally:
        _stop(process)


@pytest.mark.e2e
def test_an_installed_copy_keeps_its_data_per_user(tmp_path: Path) -> None:
    site = _copy_package(tmp_path / "site")
    env = _environment(tmp_path, site)
    data = tmp_path / "home" / ".local" / "share" / "guildhall"

    made = _guildhall(env, tmp_path / "a", "keys", "create", "--name", "k", "--scope", "heliactyl")
    assert f"data directory {data})" in made.stderr.splitlines()[0]
    listed = _guildhall(env, tmp_path / "b", "keys", "list")
    assert " k " in listed.stdout
    process, banner = _serve_heliactyl(env, tmp_path / "c")
    try:
        assert f"on sqlite+aiosqlite:///{data}/guildhall.db" in banner
        assert _key_works(banner, last_line(made.stdout))
    finally:
        _stop(process)
    # XDG_DATA_HOME moves it, for every command alike.
    moved = _environment(tmp_path, site, XDG_DATA_HOME=str(tmp_path / "xdg"))
    users = _guildhall(moved, tmp_path / "d", "users", "list")
    assert users.stderr.startswith(f"Database: sqlite+aiosqlite:///{tmp_path}/xdg/guildhall/")


@pytest.mark.e2e
def test_the_banner_names_the_database_without_its_password(
    postgres_database: str, tmp_path: Path
) -> None:
    with_password = postgres_database.replace("postgres@", "postgres:s3cret-pw@", 1)
    config = write_config(tmp_path, with_password)
    served = serve(config, "--face", "heliactyl")
    try:
        first = served.banner[0]
        assert "s3cret-pw" not in "\n".join(served.banner)
        assert first.endswith(f"on {postgres_database.replace('postgres@', 'postgres:***@', 1)}")
        assert served.banner[1] == f"  (configuration {config})"
    finally:
        served.stop()
        served.output()
