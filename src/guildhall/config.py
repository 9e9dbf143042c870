"""Settings: one TOML file plus ``GUILDHALL_*`` environment overrides.

Every command finds its settings, and so its database, by one rule, wherever
it is run from (a key made by ``guildhall keys create`` in another folder must
land in the database ``serve`` uses):

1. the file named by ``--config FILE`` or ``GUILDHALL_CONFIG``;
2. else ``guildhall.toml`` in the working directory, if there is one;
3. else no file: the built-in defaults.

The data directory (the embedded SQLite database, the generated secret,
hosted servers' folders) is ``GUILDHALL_DATA_DIR`` when set (relative to the
working directory), else the file's ``data_dir`` (relative to the file;
``var`` beside the file when the file names none, the default the README's
example shows). Without a file it is the source checkout's ``var/`` when
Guildhall runs from one (``src/guildhall`` under a ``pyproject.toml`` naming
guildhall), else the per-user ``$XDG_DATA_HOME/guildhall``
(``~/.local/share/guildhall``). It is made absolute when the settings load,
so it never depends on the working directory afterwards.

Environment variables win over the file (``GUILDHALL_DATABASE_URL``,
``GUILDHALL_FACES__HELIACTYL__PORT``...), so an operator can change one
value without editing the file.

Unknown keys are refused rather than ignored: a typo such as
``[faces.heliactly]`` must stop the start, not silently serve defaults.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

CONFIG_ENV = "GUILDHALL_CONFIG"
CONFIG_FILENAME = "guildhall.toml"


class ConfigError(Exception):
    """A configuration problem, told to the operator in one sentence."""


def checkout_root() -> Path | None:
    """The source checkout Guildhall runs from, if it runs from one.

    That is ``<root>/src/guildhall`` with a ``<root>/pyproject.toml`` naming
    the project guildhall (an editable install or ``PYTHONPATH=src``); an
    installed copy in site-packages has no such parent.
    """
    package = Path(__file__).resolve().parent
    if package.parent.name != "src":
        return None
    root = package.parent.parent
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return root if project.get("project", {}).get("name") == "guildhall" else None


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/guildhall``, or ``~/.local/share/guildhall`` (the XDG default)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the spec says a relative one is ignored
        return Path(xdg) / "guildhall"
    try:
        home = Path.home()
    except RuntimeError:
        raise ConfigError(
            "No home directory to keep data in; set data_dir or GUILDHALL_DATA_DIR."
        ) from None
    return home / ".local" / "share" / "guildhall"


def default_data_dir() -> Path:
    """Where data lives without a configuration file: the checkout's var/, else per user."""
    root = checkout_root()
    return root / "var" if root is not None else user_data_dir()


def find_config_file(config_file: Path | str | None = None) -> Path | None:
    """The file the settings come from: the one given (or GUILDHALL_CONFIG), else
    ``./guildhall.toml`` when the working directory has one, else none."""
    given = config_file or os.environ.get(CONFIG_ENV) or ""
    if given:
        return Path(given)
    try:
        local = Path.cwd() / CONFIG_FILENAME
    except OSError:  # the working directory was removed
        return None
    return local if local.is_file() else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimitSettings(_Strict):
    """At most ``requests`` per client address in each ``per_seconds`` window."""

    requests: int = Field(ge=1, le=10_000_000)
    per_seconds: int = Field(ge=1, le=86_400)


def _limits(**groups: tuple[int, int]) -> Any:
    return Field(
        default_factory=lambda: {
            group: RateLimitSettings(requests=requests, per_seconds=seconds)
            for group, (requests, seconds) in groups.items()
        }
    )


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FaceSettings(_Strict):
    """Where one face listens, whether it runs at all, and its rate limits per route group.

    ``serve_openapi`` serves the face's OpenAPI document at ``/openapi.json`` and a
    page reading it at ``/docs``; off by default, as the originals serve neither.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    rate_limits: dict[str, RateLimitSettings] = _limits(default=(6000, 60))
    cors_origins: list[str] | None = None
    serve_openapi: bool = False

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        for origin in value or ():
            parts = urlsplit(origin)
            plain = parts.scheme in ("http", "https") and parts.netloc and not parts.query
            if origin != "*" and not (plain and parts.path in ("", "/") and "@" not in origin):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
        return value

    @model_validator(mode="after")
    def _keyless_names_its_origins(self) -> FaceSettings:
        if self.keyless and self.cors_origins and "*" in self.cors_origins:
            raise ValueError(
                "a face without an API key may not let every site call it (cors_origins "
                "'*'); set its api_key or list the origins by name"
            )
        return self

    @property
    def keyless(self) -> bool:
        """True when the face would answer without any credential (allowed on loopback only)."""
        return False

    @property
    def allowed_origins(self) -> list[str]:
        """The pages that may call the face from a browser: ``cors_origins``, else none."""
        return self.cors_origins or []

    @property
    def static_keys(self) -> dict[str, str]:
        """The face's fixed keys from this file, by setting name (long ones only off loopback)."""
        return {}

    @property
    def on_loopback(self) -> bool:
        return is_loopback_host(self.host)


class HeliactylFaceSettings(FaceSettings):
    """Heliactyl API v3. ``api_code`` is the static key of a Heliactyl config.toml."""

    port: int = Field(default=8081, ge=0, le=65535)
    api_enabled: bool = True
    api_code: str = ""

    @property
    def static_keys(self) -> dict[str, str]:
        return {"api_code": self.api_code}


class LD7FaceSettings(FaceSettings):
    """LD7 multi-user API. ``api_key`` is LD7's optional static key (env ``API_KEY`` too).

    With neither ``api_key`` nor ``require_key``, the key-protected routes are
    open, so the face may then listen on a loopback address only.
    """

    port: int = Field(default=8000, ge=0, le=65535)
    api_key: str = ""
    require_key: bool = False
    rate_limits: dict[str, RateLimitSettings] = _limits(default=(600, 60))

    @property
    def keyless(self) -> bool:
        return not (self.api_key or self.require_key)

    @property
    def allowed_origins(self) -> list[str]:
        """As the document says, every origin once a key is required; none without one."""
        if self.cors_origins is not None:
            return self.cors_origins
        return [] if self.keyless else ["*"]

    @property
    def static_keys(self) -> dict[str, str]:
        return {"api_key": self.api_key}


class SkyPanelFaceSettings(FaceSettings):
    """SkyPANEL API. Tokens are HS256 JWTs signed with ``jwt_secret``.

    An empty ``jwt_secret`` uses a key derived from the installation secret
    (``secret_key``, or the file generated on first start), never a default.
    """

    port: int = Field(default=8082, ge=0, le=65535)
    # The document's: 1000 requests per 15 minutes, 10 a minute on authentication.
    rate_limits: dict[str, RateLimitSettings] = _limits(default=(1000, 900), auth=(10, 60))
    jwt_secret: str = ""
    token_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 24 * 3600)

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("must be at least 32 characters")
        return value


class AuroraFaceSettings(FaceSettings):
    """Aurora bot API. Without ``api_key`` (or ``require_key``) it is open, on loopback only.

    ``currency`` is the ledger currency Aurora's ``balance`` shows: the shared
    ``coins`` by default (what Heliactyl moves); another name keeps a separate
    balance per account.
    """

    port: int = Field(default=3000, ge=0, le=65535)
    api_key: str = ""
    require_key: bool = False
    rate_limits: dict[str, RateLimitSettings] = _limits(default=(1200, 60))
    currency: str = Field(default="coins", min_length=1, max_length=32)
    ws_max_connections: int = Field(default=10, ge=1, le=10_000)
    ws_max_connections_per_client: int = Field(default=3, ge=1, le=10_000)
    ws_max_message_bytes: int = Field(default=16 * 1024, ge=64, le=1024 * 1024)
    ws_idle_seconds: float = Field(default=60, gt=0, le=3600)
    stats_interval_seconds: float = Field(default=5, gt=0, le=3600)
    live_poll_seconds: float = Field(default=0.25, gt=0, le=60)
    activity_cache_seconds: float = Field(default=300, ge=0, le=86400)

    @property
    def keyless(self) -> bool:
        return not (self.api_key or self.require_key)

    @property
    def static_keys(self) -> dict[str, str]:
        return {"api_key": self.api_key}


class OAuthSettings(_Strict):
    """An OAuth2 provider to sign in with: Discord's endpoints unless told otherwise.

    ``timeout_seconds`` bounds the whole exchange with the provider (the token
    request and the question who logged in); no transaction is open meanwhile.
    """

    client_id: str = ""
    client_secret: str = ""
    redirect_url: str = "http://127.0.0.1:3002/api/auth/callback"
    authorize_url: str = "https://discord.com/oauth2/authorize"
    token_url: str = "https://discord.com/api/oauth2/token"
    userinfo_url: str = "https://discord.com/api/users/@me"
    scope: str = "identify"
    timeout_seconds: float = Field(default=10, gt=0, le=120)

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)


class RustmailFaceSettings(FaceSettings):
    """Rustmail REST API and panel. Super admins hold every permission."""

    port: int = Field(default=3002, ge=0, le=65535)
    rate_limits: dict[str, RateLimitSettings] = _limits(default=(6000, 60), auth=(30, 60))
    super_admin_users: list[str] = Field(default_factory=list)
    super_admin_roles: list[str] = Field(default_factory=list)
    session_ttl_seconds: int = Field(default=7 * 86400, ge=60, le=90 * 86400)
    login_ttl_seconds: int = Field(default=600, ge=10, le=3600)
    panel_url: str = ""
    oauth: OAuthSettings = OAuthSettings()

    @field_validator("panel_url")
    @classmethod
    def _panel_address(cls, value: str) -> str:
        """Where the web panel lives; login and logout send the browser there."""
        if not value:
            return value
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.query
            or parts.fragment
        ):
            raise ValueError("must be an http(s) address such as https://panel.example.com")
        return value


class FacesSettings(_Strict):
    """One section per face; faces not built yet are absent, and unknown ones refused."""

    heliactyl: HeliactylFaceSettings = HeliactylFaceSettings()
    ld7: LD7FaceSettings = LD7FaceSettings()
    skypanel: SkyPanelFaceSettings = SkyPanelFaceSettings()
    aurora: AuroraFaceSettings = AuroraFaceSettings()
    rustmail: RustmailFaceSettings = RustmailFaceSettings()


class ConsoleSettings(_Strict):
    """The web console (``faces/console``): its own listener, for staff only.

    ``session_ttl_seconds`` bounds a sign-in; the ``auth`` rate limit counts sign-in
    attempts per client address, the ``default`` one every request. With ``[console.oauth]``
    ``client_id`` and ``client_secret`` set, staff whose account is linked to a Discord id
    may also sign in through Discord (``login_ttl_seconds`` bounds that round trip).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 86400)
    login_ttl_seconds: int = Field(default=600, ge=10, le=3600)
    rate_limits: dict[str, RateLimitSettings] = _limits(default=(6000, 60), auth=(10, 60))
    oauth: OAuthSettings = OAuthSettings(
        redirect_url="http://127.0.0.1:8080/sign-in/discord/callback"
    )

    @property
    def on_loopback(self) -> bool:
        return is_loopback_host(self.host)


DEFAULT_SERVER_COMMAND = "sleep infinity"


class HostingPlanSettings(_Strict):
    """A plan and the driver its servers run on.

    ``process``: a local process running ``command`` (one command line, no
    shell). ``libvirt`` and ``virtfusion``: a virtual machine with ``vcpus``,
    ``memory_mb`` and a ``disk_gb`` disk made from ``image`` (a name under
    ``[hosting.libvirt] base_images`` or ``[hosting.virtfusion] templates``).
    ``pterodactyl``: a game server on the panel of ``[pterodactyl]``, made from
    ``egg`` (a name under ``[pterodactyl.eggs]``) with ``ram`` and ``disk`` in MB
    and ``cpu`` in percent of one core.
    """

    driver: Literal["process", "libvirt", "virtfusion", "pterodactyl"] = "process"
    command: str = Field(default=DEFAULT_SERVER_COMMAND, min_length=1)
    vcpus: int = Field(default=1, ge=1, le=512)
    memory_mb: int = Field(default=1024, ge=16, le=16_777_216)
    disk_gb: int = Field(default=20, ge=1, le=1_048_576)
    image: str = ""
    egg: str = ""
    ram: int = Field(default=1024, ge=1)
    disk: int = Field(default=5120, ge=1)
    cpu: int = Field(default=100, ge=1)

    @model_validator(mode="after")
    def _what_the_driver_needs(self) -> HostingPlanSettings:
        if self.driver == "pterodactyl" and not self.egg:
            raise ValueError("a plan on the pterodactyl driver names its egg")
        if self.driver in ("libvirt", "virtfusion") and not self.image:
            raise ValueError(f"a plan on the {self.driver} driver names its image")
        return self


def _builtin_hosting_plans() -> dict[str, HostingPlanSettings]:
    # "Basic" is the plan of SkyPANEL's example server.
    return {name: HostingPlanSettings() for name in ("Basic", "Standard", "Premium")}


class LibvirtSettings(_Strict):
    """Virtual machines through libvirt (connectors/libvirt): any libvirt URI."""

    uri: str = "qemu:///system"
    storage_pool: str = "default"
    network: str = "default"
    base_images: dict[str, str] = Field(default_factory=dict)  # image name -> volume to clone


class VirtFusionSettings(_Strict):
    """Virtual machines through a VirtFusion control server (connectors/virtfusion)."""

    url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    api_token: str = ""
    hypervisor_group_id: int = Field(default=0, ge=0)
    package_id: int = Field(default=0, ge=0)  # the VirtFusion package new servers are made from
    templates: dict[str, int] = Field(default_factory=dict)  # image name -> OS template id
    timeout_seconds: float = Field(default=30, gt=0, le=300)

    @property
    def connects(self) -> bool:
        return bool(self.url)


class HostingSettings(_Strict):
    """Servers (the SkyPANEL face): the drivers, the plans, and how servers stop."""

    driver: Literal["process"] = "process"
    shutdown_grace_seconds: float = Field(default=10, gt=0, le=600)
    start_check_seconds: float = Field(default=0.3, ge=0, le=30)
    libvirt: LibvirtSettings = LibvirtSettings()
    virtfusion: VirtFusionSettings = VirtFusionSettings()
    plans: dict[str, HostingPlanSettings] = Field(default_factory=_builtin_hosting_plans)

    def uses(self, driver: str) -> bool:
        return any(plan.driver == driver for plan in self.plans.values())

    @model_validator(mode="after")
    def _plans_fit_their_driver(self) -> HostingSettings:
        for name, plan in self.plans.items():
            if plan.driver == "libvirt" and plan.image not in self.libvirt.base_images:
                raise ValueError(
                    f"plan {name!r} names image {plan.image!r}, not under "
                    "[hosting.libvirt] base_images"
                )
            if plan.driver == "virtfusion":
                virtfusion = self.virtfusion
                if not (virtfusion.url and virtfusion.api_token):
                    raise ValueError(
                        f"plan {name!r} is on the virtfusion driver: set [hosting.virtfusion] "
                        "url and api_token"
                    )
                if plan.image not in virtfusion.templates:
                    raise ValueError(
                        f"plan {name!r} names image {plan.image!r}, not under "
                        "[hosting.virtfusion] templates"
                    )
        return self


class WebhookSettings(_Strict):
    """How signed event deliveries are sent and retried, and where they may go.

    ``allow_private_targets`` lets endpoints be loopback, private, link-local
    or other non-public addresses (see ``guildhall.events.targets``).
    """

    timeout_seconds: float = Field(default=10, gt=0, le=120)
    retry_base_seconds: float = Field(default=5, gt=0, le=3600)
    retry_max_seconds: float = Field(default=3600, gt=0, le=86_400)
    give_up_after_seconds: float = Field(default=86_400, gt=0, le=30 * 86_400)
    poll_seconds: float = Field(default=0.5, gt=0, le=60)
    allow_private_targets: bool = False


class HttpSettings(_Strict):
    """Read timeouts for every listener: a request head must arrive within
    ``header_timeout_seconds``; a body may pause at most ``body_timeout_seconds``
    (see guildhall/http_protocol.py)."""

    header_timeout_seconds: float = Field(default=10, gt=0, le=3600)
    body_timeout_seconds: float = Field(default=30, gt=0, le=3600)


class WhatsAppSettings(_Strict):
    """Real WhatsApp multi-device links (connectors/whatsapp, the ``whatsapp`` extra)."""

    store_dir: str = ""  # empty: data_dir/whatsapp; one store per session, mode 0600
    reconnect_max_seconds: float = Field(default=300, gt=0, le=86400)


class SessionsSettings(_Strict):
    """Messaging-bot sessions (the LD7 face): which connector, and pairing timing."""

    connector: Literal["loopback", "whatsapp"] = "loopback"
    pairing_ttl_seconds: float = Field(default=180, gt=0, le=3600)
    connector_timeout_seconds: float = Field(default=10, gt=0, le=120)
    sweep_interval_seconds: float = Field(default=5, gt=0, le=3600)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)


Snowflake = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
"""A Discord id, as the settings take it: its digits, in quotes."""


class DiscordModmailSettings(_Strict):
    """The modmail bot behind the Rustmail face (connectors/discord/modmail.py)."""

    enabled: bool = True
    category_ids: list[Snowflake] = Field(default_factory=list)
    staff_role_ids: list[Snowflake] = Field(default_factory=list)
    log_channel_id: Snowflake | Literal[""] = ""
    prefix: str = Field(default="!", min_length=1, max_length=8, pattern=r"^\S+$")


class DiscordAuroraSettings(_Strict):
    """The Aurora bot (connectors/discord): moderation carried out, lootdrops."""

    enabled: bool = True
    lootdrop_channel_ids: list[Snowflake] = Field(default_factory=list)


class DiscordSettings(_Strict):
    """The bot's Discord connection; an empty token keeps the bots local (no connection)."""

    token: str = ""
    api_url: str = Field(default="https://discord.com/api/v10", pattern=r"^https?://\S+$")
    guild_id: Snowflake | Literal[""] = ""
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    modmail: DiscordModmailSettings = DiscordModmailSettings()
    aurora: DiscordAuroraSettings = DiscordAuroraSettings()

    @property
    def connects(self) -> bool:
        return bool(self.token)

    @model_validator(mode="after")
    def _guild_with_token(self) -> DiscordSettings:
        if self.token and not self.guild_id:
            raise ValueError("[discord] guild_id is needed with a token: the community server")
        return self


class PterodactylEggSettings(_Strict):
    """What a user may create: one egg of the panel, and what to override."""

    egg_id: int = Field(ge=1)
    docker_image: str = ""
    startup: str = ""
    environment: dict[str, str | int | bool] = Field(default_factory=dict)


class PterodactylRenewalSettings(_Strict):
    """Heliactyl's renewal: every ``every_days`` a server costs ``cost`` coins; unpaid, it
    is suspended, and deleted after ``grace_days`` unless renewed meanwhile."""

    enabled: bool = False
    cost: int = Field(default=0, ge=0, le=999_999_999_999_999)
    every_days: float = Field(default=30, gt=0, le=3650)
    grace_days: float = Field(default=7, ge=0, le=3650)


class PterodactylSettings(_Strict):
    """The Pterodactyl panel behind Heliactyl (connectors/pterodactyl); empty url: none."""

    url: str = Field(default="", pattern=r"^(https?://\S+)?$")
    api_key: str = ""
    location_ids: list[int] = Field(default_factory=list)
    cache_seconds: float = Field(default=30, gt=0, le=86_400)
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    eggs: dict[str, PterodactylEggSettings] = Field(default_factory=dict)
    renewal: PterodactylRenewalSettings = PterodactylRenewalSettings()

    @property
    def connects(self) -> bool:
        return bool(self.url)

    @model_validator(mode="after")
    def _key_with_url(self) -> PterodactylSettings:
        if self.url and not self.api_key:
            raise ValueError("[pterodactyl] api_key is needed with a url: an application key")
        if self.url and not self.location_ids:
            raise ValueError("[pterodactyl] location_ids names where new servers may go")
        return self


class BackupSettings(_Strict):
    """Scheduled whole-installation backups (``guildhall backup`` on a timer), made by one
    process per installation; 0 hours: none."""

    every_hours: float = Field(default=0, ge=0, le=24 * 366)
    keep: int = Field(default=7, ge=1, le=10_000)
    dir: str = ""  # empty: data_dir/backups
    passphrase_file: str = ""  # empty: not encrypted, and without the installation secret


class PackageSettings(_Strict):
    """A hosting package: the base resources a plan grants."""

    ram: int = Field(ge=0)
    disk: int = Field(ge=0)
    cpu: int = Field(ge=0)
    servers: int = Field(ge=0)


def _builtin_packages() -> dict[str, PackageSettings]:
    # The names the Heliactyl document uses in its examples ("default",
    # "premium", "2"), so those examples work on a fresh install.
    return {
        "default": PackageSettings(ram=2048, disk=10240, cpu=100, servers=2),
        "premium": PackageSettings(ram=8192, disk=40960, cpu=400, servers=6),
        "2": PackageSettings(ram=4096, disk=20480, cpu=200, servers=4),
    }


class PackagesSettings(_Strict):
    default: str = "default"
    list: dict[str, PackageSettings] = Field(default_factory=_builtin_packages)

    @model_validator(mode="after")
    def _default_exists(self) -> PackagesSettings:
        if self.default not in self.list:
            raise ValueError(f"the default package {self.default!r} is not in [packages.list]")
        return self


class Settings(BaseSettings):
    """Everything an operator can set. See README.md for the file format."""

    model_config = SettingsConfigDict(
        env_prefix="GUILDHALL_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = ""
    database_pool_size: int = Field(default=10, ge=1, le=200)
    redis_url: str = ""
    redis_prefix: str = Field(default="guildhall", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    trusted_proxies: list[str] = Field(default_factory=list)
    secret_key: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_access: bool = False
    faces: FacesSettings = FacesSettings()
    console: ConsoleSettings = ConsoleSettings()
    packages: PackagesSettings = PackagesSettings()
    sessions: SessionsSettings = SessionsSettings()
    hosting: HostingSettings = HostingSettings()
    webhooks: WebhookSettings = WebhookSettings()
    http: HttpSettings = HttpSettings()
    discord: DiscordSettings = DiscordSettings()
    pterodactyl: PterodactylSettings = PterodactylSettings()
    backup: BackupSettings = BackupSettings()
    _config_file: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _panel_plans(self) -> Settings:
        for name, plan in self.hosting.plans.items():
            if plan.driver != "pterodactyl":
                continue
            if not self.pterodactyl.connects:
                raise ValueError(
                    f"plan {name!r} is on the pterodactyl driver: set [pterodactyl] url"
                )
            if plan.egg not in self.pterodactyl.eggs:
                raise ValueError(
                    f"plan {name!r} names egg {plan.egg!r}, not under [pterodactyl.eggs]"
                )
        return self

    @model_validator(mode="after")
    def _ld7_environment_key(self) -> Settings:
        # LD7 reads its key from API_KEY; operators moving over keep their environment.
        if not self.faces.ld7.api_key and (legacy := os.environ.get("API_KEY")):
            ld7 = self.faces.ld7.model_copy(update={"api_key": legacy})
            self.faces = self.faces.model_copy(update={"ld7": ld7})
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once, here: later uses must not depend on the working directory.
        return Path(os.path.abspath(value.expanduser()))

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must start with sqlite:// or postgresql://")
        if value:
            try:
                make_url(value)
            except (ArgumentError, ValueError) as exc:
                raise ValueError(f"is not a database URL ({exc})") from None
        return value

    @property
    def resolved_database_url(self) -> str:
        """The async URL to connect with: the embedded SQLite file unless one is set."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'guildhall.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        if url.startswith("postgresql://"):
            return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
        if url.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
        return url

    @property
    def config_file(self) -> Path | None:
        """The file these settings were read from (None: built-in defaults)."""
        return self._config_file

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values, then the environment, then the file (passed as init
        # data by load_settings), then defaults.
        return (env_settings, init_settings)


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        parent, _, name = where.rpartition(".")
        if parent == "faces":
            known = ", ".join(FacesSettings.model_fields)
            return f"{source}: unknown face {name!r} (known faces: {known})."
        return f"{source}: unknown setting {where!r}."
    return f"{source}: {where}: {first['msg']}."


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if any), apply the environment, and validate.

    Raises ConfigError with one readable sentence on any problem.
    """
    path = find_config_file(config_file)
    data: dict[str, Any] = {}
    source = "configuration"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"The configuration file {path} does not exist.") from None
        except OSError as exc:
            raise ConfigError(f"The configuration file {path} cannot be read: {exc}.") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"The configuration file {path} is not valid TOML: {exc}.") from None
        # A relative data_dir is relative to the file that names it ("var" when it names none).
        named = data.get("data_dir", "var")
        if isinstance(named, str):
            named_path = Path(named).expanduser()
            data["data_dir"] = str(
                named_path if named_path.is_absolute() else path.parent / named_path
            )
    data.update(overrides)
    try:
        settings = Settings(**data)
        settings._config_file = path.absolute() if path is not None else None
        return settings
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}.") from None
