"""Settings from one TOML file with GUILDHALL_* overrides, refused loudly when wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from guildhall.config import ConfigError, load_settings
from guildhall.faces import FACES


def test_defaults_use_sqlite_under_the_checkouts_var(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wherever the command runs (not under the working directory: issue 15)."""
    monkeypatch.delenv("GUILDHALL_CONFIG")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    root = Path(__file__).resolve().parent.parent
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{root}/var/guildhall.db"
    assert (settings.faces.heliactyl.host, settings.faces.heliactyl.port) == ("127.0.0.1", 8081)
    assert settings.packages.default == "default"
    assert {"default", "premium", "2"} <= set(settings.packages.list)


def test_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "guildhall.toml"
    config.write_text(
        'data_dir = "state"\n'
        '[faces.heliactyl]\nport = 9000\napi_code = "abc"\n'
        '[packages]\ndefault = "tiny"\n'
        "[packages.list.tiny]\nram = 1\ndisk = 2\ncpu = 3\nservers = 4\n"
    )
    monkeypatch.setenv("GUILDHALL_FACES__HELIACTYL__PORT", "9100")
    monkeypatch.setenv("GUILDHALL_DATABASE_URL", "postgresql://u@db.example:5432/gh")
    settings = load_settings(config)
    assert settings.faces.heliactyl.port == 9100
    assert settings.faces.heliactyl.api_code == "abc"
    assert settings.data_dir == tmp_path / "state"
    assert settings.resolved_database_url == "postgresql+asyncpg://u@db.example:5432/gh"
    assert list(settings.packages.list) == ["tiny"]


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "g.toml"
    config.write_text("[faces.heliactyl]\nport = 9200\n")
    monkeypatch.setenv("GUILDHALL_CONFIG", str(config))
    assert load_settings(None).faces.heliactyl.port == 9200


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("[faces.heliactyl\nport = 1\n", "is not valid TOML"),
        (
            "[faces.heliactly]\nport = 1\n",
            f"unknown face 'heliactly' (known faces: {', '.join(FACES)})",
        ),
        ("colour = 'blue'\n", "unknown setting 'colour'"),
        ("[faces.heliactyl]\nport = 'high'\n", "faces.heliactyl.port"),
        ("[faces.heliactyl]\nport = 70000\n", "faces.heliactyl.port"),
        ('[packages]\ndefault = "gold"\n', "the default package 'gold' is not in [packages.list]"),
        ('database_url = "mysql://x"\n', "must start with sqlite:// or postgresql://"),
        ('database_url = "postgresql://u:p@host:port/db"\n', "is not a database URL"),
        (
            '[faces.rustmail]\npanel_url = "javascript:alert(1)"\n',
            "faces.rustmail.panel_url: Value error, must be an http(s) address",
        ),
        (
            '[pterodactyl]\nurl = "https://panel.example.com"\nlocation_ids = [1]\n',
            "[pterodactyl] api_key is needed with a url",
        ),
        (
            '[pterodactyl]\nurl = "https://panel.example.com"\napi_key = "ptla_x"\n',
            "[pterodactyl] location_ids names where new servers may go",
        ),
        ("[pterodactyl.eggs.paper]\negg_id = 0\n", "pterodactyl.eggs.paper.egg_id"),
        (
            '[hosting.plans.Game]\ndriver = "pterodactyl"\negg = "paper"\n',
            "plan 'Game' is on the pterodactyl driver: set [pterodactyl] url",
        ),
        (
            '[pterodactyl]\nurl = "https://p.example"\napi_key = "k"\nlocation_ids = [1]\n'
            '[hosting.plans.Game]\ndriver = "pterodactyl"\negg = "paper"\n',
            "plan 'Game' names egg 'paper', not under [pterodactyl.eggs]",
        ),
        ('[hosting.plans.Game]\ndriver = "pterodactyl"\n', "names its egg"),
        (
            '[hosting.plans.VM]\ndriver = "libvirt"\n',
            "a plan on the libvirt driver names its image",
        ),
        (
            '[hosting.plans.VM]\ndriver = "libvirt"\nimage = "debian-12"\n',
            "plan 'VM' names image 'debian-12', not under [hosting.libvirt] base_images",
        ),
        (
            '[hosting.plans.VM]\ndriver = "virtfusion"\nimage = "debian-12"\n',
            "plan 'VM' is on the virtfusion driver: set [hosting.virtfusion] url and api_token",
        ),
        ('[hosting.plans.VM]\ndriver = "xen"\n', "hosting.plans.VM.driver"),
    ],
)
def test_bad_configuration_is_one_clear_sentence(tmp_path: Path, text: str, sentence: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    message = str(caught.value)
    assert sentence in message
    assert "\n" not in message.strip()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nowhere.toml")


def test_the_readme_configuration_example_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    config = tmp_path / "guildhall.toml"
    config.write_text(example)
    settings = load_settings(config)
    assert (settings.faces.ld7.port, settings.faces.ld7.keyless) == (8000, True)
    assert settings.sessions.pairing_ttl_seconds == 180
    assert set(settings.packages.list) == {"default", "premium"}


@pytest.mark.parametrize(
    ("face", "setting"), [("heliactyl", "api_code"), ("ld7", "api_key"), ("aurora", "api_key")]
)
def test_a_short_static_key_is_refused_off_loopback_only(
    face: str, setting: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guildhall.server import plan_listeners

    monkeypatch.delenv("API_KEY", raising=False)
    exposed = load_settings(None, faces={face: {"host": "0.0.0.0", setting: "a" * 23}})
    with pytest.raises(ConfigError) as caught:
        plan_listeners(exposed)
    assert str(caught.value) == (
        f"faces.{face}.{setting} is shorter than 24 characters, and the face listens on 0.0.0.0 "
        "where anyone can try keys until one fits; set a longer one (`openssl rand -hex 24` "
        "makes one)."
    )
    long_enough = load_settings(None, faces={face: {"host": "0.0.0.0", setting: "a" * 24}})
    assert face in [listener.face for listener in plan_listeners(long_enough)]
    for host in ("127.0.0.1", "::1", "localhost"):
        local = load_settings(None, faces={face: {"host": host, setting: "a"}})
        assert face in [listener.face for listener in plan_listeners(local)]
