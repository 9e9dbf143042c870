"""The operator commands, run as real processes the way an operator runs them."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from guildhall.faces import FACES
from tests.process import cli_env, free_port, guildhall, last_line, serve, write_config

pytestmark = pytest.mark.e2e


def test_users_create_prints_the_id_and_link_adds_identities(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)
    first = guildhall(config, "users", "create", "--username", "alice", "--discord", "111")
    assert last_line(first.stdout) == "1"
    second = guildhall(
        config,
        "users",
        "create",
        "--username",
        "bob",
        "--email",
        "bob@example.com",
        "--password",
        "correct horse",
        "--github",
        "222",
        "--role",
        "admin",
    )
    assert last_line(second.stdout) == "2"
    guildhall(config, "users", "link", "alice", "--google", "333")
    piped = subprocess.run(
        [
            sys.executable,
            "-m",
            "guildhall",
            "users",
            "create",
            "--username",
            "carol",
            "--password",
            "-",
        ],
        input="from stdin\n",
        env=cli_env(config),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert last_line(piped.stdout) == "3", piped.stderr
    listing = guildhall(config, "users", "list").stdout
    assert "discord:111" in listing
    assert "google:333" in listing
    assert "github:222" in listing


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (("users", "create", "--username", "alice"), "username 'alice' is taken"),
        (
            ("users", "create", "--username", "carol", "--discord", "111"),
            "discord id 111 is already linked",
        ),
        (("users", "link", "nobody", "--discord", "5"), "no account has the id 'nobody'"),
        (("users", "link", "alice"), "name an identity to link"),
        (("users", "link", "²", "--discord", "5"), "no account has the id '²'"),
        (
            ("users", "create", "--username", "dave", "--discord", "²"),
            "discord id is 1 to 32 digits",
        ),
        (("users", "link", "alice", "--discord", "dave#1234"), "discord id is 1 to 32 digits"),
        (("keys", "revoke", "99"), "no API key has the id 99"),
        (("keys", "create", "--name", "x", "--scope", "bad scope!"), "is not a valid scope"),
        (
            ("keys", "create", "--name", "x", "--scope", "heliactyl", "--expires", "soon"),
            "is not an ISO 8601 date",
        ),
    ],
)
def test_operator_mistakes_get_one_sentence_and_a_failing_exit(
    database_url: str, tmp_path: Path, args: tuple[str, ...], sentence: str
) -> None:
    config = write_config(tmp_path, database_url)
    guildhall(config, "users", "create", "--username", "alice", "--discord", "111")
    result = guildhall(config, *args, check=False)
    assert result.returncode != 0
    assert sentence.lower() in result.stderr.lower()
    assert "Traceback" not in result.stderr + result.stdout


def test_keys_create_list_revoke(database_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, database_url)
    created = guildhall(
        config,
        "keys",
        "create",
        "--name",
        "panel",
        "--scope",
        "heliactyl",
        "--expires",
        "2099-01-01T00:00:00Z",
    )
    key = last_line(created.stdout)
    assert key.startswith("gh_") and len(key) > 40
    listing = guildhall(config, "keys", "list").stdout
    assert "panel" in listing and "active" in listing
    assert key not in listing
    guildhall(config, "keys", "revoke", "1")
    assert "revoked" in guildhall(config, "keys", "list").stdout


def test_migrate_reports_the_database(database_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, database_url)
    result = guildhall(config, "migrate")
    assert "is up to date" in result.stdout


def test_serve_refuses_a_port_in_use(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, database_url, heliactyl={"port": port})
        result = guildhall(config, "serve", check=False)
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 (heliactyl face) is already in use." in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_trivial_key_off_loopback(database_url: str, tmp_path: Path) -> None:
    config = write_config(
        tmp_path, database_url, heliactyl={"host": "0.0.0.0", "port": 0, "api_code": "a"}
    )
    result = guildhall(config, "serve", check=False)
    assert result.returncode != 0
    assert "faces.heliactyl.api_code is shorter than 24 characters" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unknown_face(database_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, database_url, heliactyl={"port": free_port()})
    result = guildhall(config, "serve", "--face", "discord", check=False)
    assert result.returncode != 0
    assert f"Unknown face 'discord' (known faces: {', '.join(FACES)})." in result.stderr


def test_unreachable_database_is_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text('database_url = "postgresql://postgres@127.0.0.1:1/none"\n')
    result = subprocess.run(
        [sys.executable, "-m", "guildhall", "migrate"],
        env=cli_env(config),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Cannot reach the database at postgresql+asyncpg://postgres@127.0.0.1:1/none" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_malformed_config_stops_every_command(tmp_path: Path) -> None:
    config = tmp_path / "g.toml"
    config.write_text("[faces\n")
    for args in (("serve",), ("migrate",), ("keys", "list")):
        result = guildhall(config, *args, check=False)
        assert result.returncode != 0
        assert "is not valid TOML" in result.stderr
        assert "Traceback" not in result.stderr


def test_serve_prints_each_face_url_and_a_working_key(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, database_url, heliactyl={"port": port})
    served = serve(config, "--demo")
    try:
        assert served.url("heliactyl") == f"http://127.0.0.1:{port}"
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v3/userinfo",
            params={"id": "849694563295690772"},
            headers={"Authorization": f"Bearer {served.demo_key}"},
        )
        assert response.json()["userinfo"]["attributes"]["username"] == "miguel.cuba"
    finally:
        assert served.stop() == 0
        served.output()


def test_directory_members_and_roles_for_the_panel(database_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, database_url)
    if not database_url.startswith("sqlite"):
        guildhall(config, "migrate")
    role = guildhall(
        config, "directory", "add-role", "42", "--name", "Moderator", "--color", "3447003"
    )
    assert "role 42 (Moderator) set" in role.stdout
    member = guildhall(
        config,
        "directory",
        "add-member",
        "123456789012345678",
        "--username",
        "StaffMember",
        "--role",
        "42",
    )
    assert "member 123456789012345678 (StaffMember) set" in member.stdout
    bad = guildhall(config, "directory", "add-member", "not-an-id", "--username", "x", check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr

    import asyncio

    from guildhall.config import load_settings
    from guildhall.core.community import service as community
    from guildhall.runtime import Runtime

    async def read() -> tuple[list[str], list[tuple[str, str, str]]]:
        runtime = Runtime(load_settings(config))
        try:
            async with runtime.database.unit_of_work(write=False) as session:
                roles = await community.roles_of(session, "123456789012345678")
                entries = await community.directory(session, "role")
                return roles, [(e.key, e.name, e.detail) for e in entries]
        finally:
            await runtime.close()

    assert asyncio.run(read()) == (["42"], [("42", "Moderator", "#3498DB")])
