"""Operator commands: ``guildhall serve``, ``migrate``, ``demo``, ``users``, ``keys``.

Commands whose output a script reads print the one value it wants (an id, a
key) alone on the last line of stdout. Every failure an operator can cause
(bad config, unreachable database, a taken name) ends with one sentence on
stderr and a non-zero exit, never a traceback.

Which database a command works on follows one rule (see ``config``); ``serve``
names it in its banner, and ``users``, ``keys`` and ``demo`` name it first,
on stderr (stdout stays what a script reads), so a key made in the wrong
database is seen at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from guildhall import __version__
from guildhall.config import ConfigError, Settings, load_settings
from guildhall.core.access import service as access
from guildhall.core.accounts import service as accounts
from guildhall.core.accounts.models import Provider, Role
from guildhall.core.actor import Actor
from guildhall.core.billing import service as billing
from guildhall.core.community import service as community
from guildhall.core.errors import CoreError
from guildhall.core.sessions.connector import ConnectorError
from guildhall.core.support import service as support
from guildhall.db import backup as backups
from guildhall.db.engine import Database
from guildhall.runtime import Runtime
from guildhall.secrets import UnsealError

app = typer.Typer(
    help="Guildhall: one back office behind the Heliactyl, Rustmail, LD7, SkyPANEL and "
    "Aurora APIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
users_app = typer.Typer(help="Accounts and their linked identities.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (shown once, stored hashed).", no_args_is_help=True)
sessions_app = typer.Typer(help="Messaging-bot sessions (the LD7 face).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(sessions_app, name="sessions")
servers_app = typer.Typer(help="Hosted servers (the SkyPANEL face).", no_args_is_help=True)
invoices_app = typer.Typer(help="Invoices (the SkyPANEL face).", no_args_is_help=True)
app.add_typer(servers_app, name="servers")
app.add_typer(invoices_app, name="invoices")
directory_app = typer.Typer(
    help="The guild's roles, channels and bot commands (Aurora's settings meta).",
    no_args_is_help=True,
)
app.add_typer(directory_app, name="directory")
webhooks_app = typer.Typer(
    help="Signed webhook endpoints and their deliveries.", no_args_is_help=True
)
app.add_typer(webhooks_app, name="webhooks")
tickets_app = typer.Typer(help="Modmail tickets (the Rustmail face).", no_args_is_help=True)
app.add_typer(tickets_app, name="tickets")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="GUILDHALL_CONFIG",
        help="TOML configuration file.",
        show_default=False,
    ),
]

T = TypeVar("T")


def _operator() -> Actor:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Actor("operator", f"operator {name} (cli)")


def _fail(message: str) -> typer.Exit:
    # Escaped: a message may quote a setting ("[webhooks] ..."), which is not markup.
    err.print(f"[bold red]Error:[/] {escape(message)}", markup=True)
    return typer.Exit(1)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


def _origin(settings: Settings) -> str:
    """Where the settings came from, for the operator."""
    if settings.config_file is not None:
        return f"configuration {settings.config_file}"
    return f"no configuration file; data directory {settings.data_dir}"


def _show_database(settings: Settings) -> None:
    err.print(f"Database: {Runtime.describe_url(settings)} ({_origin(settings)})")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except CoreError as exc:
        raise _fail(exc.message[0].upper() + exc.message[1:] + ".") from None
    except (ConnectorError, UnsealError, backups.BackupError) as exc:
        raise _fail(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None


async def _with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    runtime = Runtime(settings)
    try:
        await runtime.prepare()
        return await work(runtime)
    finally:
        await runtime.close()


def _transact(
    config: Path | None,
    work: Callable[[Runtime, AsyncSession], Awaitable[T]],
    *,
    write: bool = True,
    show_database: bool = False,
) -> T:
    """Run ``work`` in one unit of work on the configured database: what most commands do."""

    async def in_transaction(runtime: Runtime) -> T:
        async with runtime.database.unit_of_work(write=write) as session:
            return await work(runtime, session)

    settings = _settings(config)
    if show_database:
        _show_database(settings)
    return _run(_with_runtime(settings, in_transaction))


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"{option} {value!r} is not an ISO 8601 date and time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@app.command()
def serve(
    config: ConfigOption = None,
    demo: Annotated[bool, typer.Option(help="Load the demo data and print a demo key.")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Server processes.")] = 1,
    face: Annotated[
        list[str] | None, typer.Option(help="Serve only this face (repeatable).")
    ] = None,
) -> None:
    """Run every enabled face, each on its own listener, until Ctrl-C or SIGTERM."""
    from guildhall import demo as demo_data
    from guildhall import server
    from guildhall.faces import CONSOLE, ENTRANCES

    settings = _settings(config)

    async def prepare(runtime: Runtime) -> tuple[demo_data.DemoResult | None, str | None]:
        warning = await runtime.check_redis()
        if not demo:
            return None, warning
        loaded = await demo_data.load(runtime)
        for note in loaded.notes:
            err.print(f"Demo data: {note}")
        return loaded, warning

    try:
        listeners = server.plan_listeners(settings, face or ())
        sockets = server.bind(listeners, workers=workers)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    try:
        loaded, redis_warning = _run(_with_runtime(settings, prepare))
        if redis_warning:
            out.print(redis_warning, markup=False)
        if plain_http := server.plain_http_warning(settings, listeners):
            out.print(plain_http, markup=False)
        out.print(f"Guildhall {__version__} on {Runtime.describe_url(settings)}")
        out.print(f"  ({_origin(settings)})")
        for listener, sock in zip(listeners, sockets, strict=True):
            entrance = ENTRANCES[listener.face]
            base = server.url_of(listener, sock) + entrance.base_path
            how = entrance.credentials(settings)
            out.print(f"  {listener.face:<10} {base:<28} {how}", markup=False)
        if loaded is not None:
            out.print(
                "Demo API key (every scope; a new one replaces it at each --demo start): "
                + loaded.api_key
            )
            if loaded.console_password and any(item.face == CONSOLE for item in listeners):
                out.print(
                    f"Demo console sign-in (new at each --demo start): {demo_data.DEMO_ADMIN} "
                    + loaded.console_password,
                    markup=False,
                )
        out.print("Press Ctrl-C to stop.")
        sys.stdout.flush()
        server.run(settings, listeners, sockets, workers)
    finally:
        for sock in sockets:
            sock.close()


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Apply the database migrations."""
    settings = _settings(config)

    async def work() -> None:
        runtime = Runtime(settings)
        try:
            await runtime.migrate()
        finally:
            await runtime.close()

    _run(work())
    out.print(f"Database at {Runtime.describe_url(settings)} is up to date.")


PassphraseOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="A file holding the backup's passphrase (its first line).",
        dir_okay=False,
    ),
]


def _passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise _fail(f"The passphrase file {path} cannot be read: {exc.strerror}.") from None
    if not lines or not lines[0].strip():
        raise _fail(f"The passphrase file {path} is empty.")
    return lines[0]


@contextlib.contextmanager
def _progress(what: str) -> Iterator[backups.Progress]:
    """Rows and bytes as they go, on a terminal; nothing when piped."""
    if not err.is_terminal:
        yield lambda _name, _count: None
        return
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err) as bar:
        task = bar.add_task(what)

        def show(name: str, count: int) -> None:
            unit = "bytes" if name == "sealing" else "rows"
            bar.update(task, description=f"{what}: {name}, {count} {unit}")

        yield show


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(metavar="FILE", dir_okay=False)],
    passphrase_file: PassphraseOption = None,
    config: ConfigOption = None,
) -> None:
    """Back the whole installation up into FILE while it serves.

    With a passphrase the file is encrypted and holds the installation secret;
    without one it is not encrypted and the secret is left out.
    """
    settings = _settings(config)
    phrase = _passphrase(passphrase_file)

    async def work(runtime: Runtime) -> backups.Manifest:
        with _progress("backup") as progress:
            return await backups.write_backup(
                runtime.database, settings.data_dir, file, phrase, progress
            )

    manifest = _run(_with_runtime(settings, work))
    rows = sum(manifest.counts.values())
    out.print(
        f"Backed up {rows} rows of {len(manifest.counts)} tables (schema {manifest.revision}) "
        f"to {file}."
    )
    if not manifest.has_secret:
        err.print(
            "Not encrypted, and without the installation secret: keep "
            f"{settings.data_dir / backups.SECRET_FILE} (or secret_key) apart, or sealed "
            "secrets cannot be read after a restore. --passphrase-file includes it."
        )


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(metavar="FILE", dir_okay=False)],
    passphrase_file: PassphraseOption = None,
    replace: Annotated[
        bool, typer.Option(help="Replace a non-empty installation (backed up first).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Restore a backup into this (empty) installation, then check it."""
    settings = _settings(config)
    phrase = _passphrase(passphrase_file)

    async def work() -> tuple[backups.Manifest, Path | None]:
        runtime = Runtime(settings)
        kept: Path | None = None
        try:
            with backups.opened(file, phrase) as (manifest, unpacked):
                if replace and await backups.has_rows(runtime.database):
                    kept = backups.replaced_path(settings.data_dir)
                    with _progress("keeping what is replaced") as progress:
                        await backups.write_backup(
                            runtime.database, settings.data_dir, kept, phrase, progress
                        )
                with _progress("restore") as progress:
                    await backups.fill(
                        runtime.database, manifest, unpacked / "tables", progress, replace=replace
                    )
                backups.restore_files(unpacked, settings.data_dir, manifest)
                return manifest, kept
        finally:
            await runtime.close()

    manifest, kept = _run(work())
    if kept is not None:
        err.print(f"What was replaced is backed up in {kept}.")
    rows = sum(manifest.counts.values())
    out.print(
        f"Restored {rows} rows of {len(manifest.counts)} tables from {file}; row counts and "
        "every balance against its ledger checked."
    )


@app.command()
def move(
    to: Annotated[str, typer.Option("--to", help="The empty PostgreSQL database to move to.")],
    config: ConfigOption = None,
) -> None:
    """Copy this SQLite installation into an empty PostgreSQL database; prints the
    configuration line to switch to it."""
    settings = _settings(config)
    if not settings.is_sqlite:
        raise _fail("This installation is already on PostgreSQL; move copies a SQLite one.")
    if not to.startswith(("postgresql://", "postgres://")):
        raise _fail("--to must be a PostgreSQL URL (postgresql://user@host/database).")
    try:
        target_url = load_settings(None, data_dir=str(settings.data_dir), database_url=to)
    except ConfigError as exc:
        raise _fail(str(exc)) from None

    async def work(runtime: Runtime) -> backups.Manifest:
        target = Database(target_url.resolved_database_url)
        try:
            with _progress("move") as progress:
                return await backups.move(runtime.database, target, progress)
        finally:
            await target.dispose()

    manifest = _run(_with_runtime(settings, work))
    rows = sum(manifest.counts.values())
    err.print(
        f"Copied {rows} rows of {len(manifest.counts)} tables to "
        f"{Runtime.describe_url(target_url)}; counts and balances checked. To switch, put "
        "this line in the configuration file:"
    )
    out.print(f'database_url = "{to}"', markup=False)


@app.command("demo")
def demo_command(config: ConfigOption = None) -> None:
    """Load the demo data; prints a fresh demo API key on the last line."""
    from guildhall import demo as demo_data

    settings = _settings(config)
    _show_database(settings)
    result = _run(_with_runtime(settings, demo_data.load))
    for username in result.created:
        out.print(f"created demo account {username}")
    for note in result.notes:
        err.print(note)
    out.print("Demo API key (all scopes):")
    out.print(result.api_key)


@app.command("openapi")
def openapi_command(
    face: Annotated[str, typer.Argument(help="heliactyl, ld7, skypanel, aurora or rustmail")],
) -> None:
    """Print a face's OpenAPI 3.1 document as JSON (also served at /openapi.json when
    ``[faces.FACE] serve_openapi = true``)."""
    import json

    from guildhall.faces import FACES
    from guildhall.faces.common import openapi

    if face not in FACES:
        raise _fail(f"there is no face {face!r}; the faces are {', '.join(FACES)}")
    sys.stdout.write(json.dumps(openapi.document(face), indent=2, ensure_ascii=False) + "\n")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Unique user name.")],
    config: ConfigOption = None,
    email: Annotated[str | None, typer.Option()] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Local login password; '-' reads it from stdin (not visible in ps)."),
    ] = None,
    discord: Annotated[str | None, typer.Option(help="Discord user id.")] = None,
    google: Annotated[str | None, typer.Option(help="Google user id.")] = None,
    github: Annotated[str | None, typer.Option(help="GitHub user id.")] = None,
    role: Annotated[Role, typer.Option()] = Role.USER,
) -> None:
    """Create an account; prints its id alone on the last line."""
    if password == "-":
        password = sys.stdin.readline().rstrip("\n")
    linked = {
        provider: subject
        for provider, subject in (
            (Provider.DISCORD, discord),
            (Provider.GOOGLE, google),
            (Provider.GITHUB, github),
        )
        if subject is not None
    }

    async def work(runtime: Runtime, session: AsyncSession) -> int:
        account = await accounts.create(
            session,
            username=username,
            email=email,
            password=password,
            role=role,
            identities=linked,
            actor=_operator(),
        )
        return account.id

    account_id = _transact(config, work, show_database=True)
    out.print(account_id)


@users_app.command("link")
def users_link(
    account: Annotated[str, typer.Argument(help="Account id, username or any linked id.")],
    config: ConfigOption = None,
    discord: Annotated[str | None, typer.Option()] = None,
    google: Annotated[str | None, typer.Option()] = None,
    github: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Link one or more identities to an existing account."""
    linked = [
        (provider, subject)
        for provider, subject in (
            (Provider.DISCORD, discord),
            (Provider.GOOGLE, google),
            (Provider.GITHUB, github),
        )
        if subject is not None
    ]
    if not linked:
        raise _fail("name an identity to link: --discord, --google or --github")

    async def work(runtime: Runtime, session: AsyncSession) -> int:
        ref = await accounts.resolve(session, account)
        for provider, subject in linked:
            await accounts.link(session, ref, provider, subject, _operator())
        return ref.id

    account_id = _transact(config, work, show_database=True)
    for provider, subject in linked:
        out.print(f"linked {provider} {subject} to account {account_id}")


@users_app.command("list")
def users_list(config: ConfigOption = None) -> None:
    """List accounts with their linked identities."""

    async def work(runtime: Runtime, session: AsyncSession) -> list[tuple[Any, list[str]]]:
        rows = []
        for account in await accounts.list_accounts(session):
            identities = await accounts.list_identities(session, account.id)
            rows.append(
                (
                    account,
                    [f"{i.provider}:{i.subject}" for i in identities if i.provider != "local"],
                )
            )
        return rows

    table = Table("id", "username", "email", "role", "identities", "uuid")
    for account, identities in _transact(config, work, write=False, show_database=True):
        table.add_row(
            str(account.id),
            account.username,
            account.email or "",
            account.role,
            " ".join(identities),
            account.uuid,
        )
    out.print(table)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for.")],
    scope: Annotated[list[str], typer.Option(help="A scope such as heliactyl (repeatable).")],
    config: ConfigOption = None,
    expires: Annotated[str | None, typer.Option(help="ISO 8601 expiry; none = never.")] = None,
) -> None:
    """Create an API key; prints the key alone on the last line, this once."""
    expires_at = _parse_time(expires, "--expires")

    async def work(runtime: Runtime, session: AsyncSession) -> tuple[int, str]:
        key, plaintext = await access.create(
            session, name=name, scopes=scope, expires_at=expires_at, actor=_operator()
        )
        return key.id, plaintext

    key_id, plaintext = _transact(config, work, show_database=True)
    err.print(f"API key #{key_id} created; it is shown once, store it now.")
    out.print(plaintext)


@keys_app.command("list")
def keys_list(config: ConfigOption = None) -> None:
    """List API keys (never their secret)."""

    async def work(runtime: Runtime, session: AsyncSession) -> list[Any]:
        return await access.list_keys(session)

    table = Table("id", "name", "prefix", "scopes", "created", "expires", "last used", "state")
    now = datetime.now(UTC)
    for key in _transact(config, work, write=False, show_database=True):
        if key.revoked_at:
            state = "revoked"
        elif key.expires_at and key.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        table.add_row(
            str(key.id),
            key.name,
            key.prefix + "…",
            " ".join(key.scopes),
            _when(key.created_at),
            _when(key.expires_at),
            _when(key.last_used_at),
            state,
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID")],
    config: ConfigOption = None,
) -> None:
    """Revoke an API key; it is refused from the next request on."""

    async def work(runtime: Runtime, session: AsyncSession) -> str:
        return (await access.revoke(session, key_id, _operator())).name

    name = _transact(config, work, show_database=True)
    out.print(f"revoked API key #{key_id} ({name})")


@sessions_app.command("pair")
def sessions_pair(
    user_id: Annotated[str, typer.Argument(metavar="USERID", help="The session's userId.")],
    code: Annotated[str, typer.Argument(metavar="CODE", help="Its pairing code, ABCD-1234.")],
    config: ConfigOption = None,
) -> None:
    """Enter a pairing code as the phone would (loopback connector); the session goes online."""

    async def work(runtime: Runtime) -> str:
        paired = await runtime.sessions.complete_pairing(user_id, code, _operator())
        return paired.state.value

    state = _run(_with_runtime(_settings(config), work))
    out.print(f"session {user_id} paired; it is {state}")


@sessions_app.command("list")
def sessions_list(config: ConfigOption = None) -> None:
    """List bot sessions with their state (never a pairing code or login)."""

    async def work(runtime: Runtime, session: AsyncSession) -> list[Any]:
        return await runtime.sessions.list(session)

    table = Table("userId", "phone", "name", "state", "paired", "last connected")
    for item in _transact(config, work, write=False):
        table.add_row(
            item.handle,
            item.phone_number,
            item.name or "",
            item.state.value,
            "yes" if item.paired else "no",
            item.last_connected_at.strftime("%Y-%m-%d %H:%M:%S") if item.last_connected_at else "-",
        )
    out.print(table)


@servers_app.command("create")
def servers_create(
    owner: Annotated[str, typer.Option(help="Account id, username or any linked id.")],
    name: Annotated[str, typer.Option(help="The server's name.")],
    plan: Annotated[str | None, typer.Option(help="A plan under [hosting.plans].")] = None,
    egg: Annotated[
        str | None,
        typer.Option(help="A game server on the panel: an egg under [pterodactyl.eggs]."),
    ] = None,
    ram: Annotated[int | None, typer.Option(help="With --egg: memory in MB.")] = None,
    disk: Annotated[int | None, typer.Option(help="With --egg: disk in MB.")] = None,
    cpu: Annotated[int | None, typer.Option(help="With --egg: CPU in percent of one core.")] = None,
    config: ConfigOption = None,
) -> None:
    """Create a server: on its plan's driver (--plan), or a game server on the Pterodactyl
    panel within the owner's package (--egg --ram --disk --cpu); prints its id alone on
    the last line."""
    settings = _settings(config)
    if (plan is None) == (egg is None):
        raise _fail("Give either --plan (a hosting plan) or --egg (a game server on the panel).")
    if plan is not None:

        async def in_plan(runtime: Runtime) -> str:
            return await runtime.create_server(owner, name, plan, _operator())

        out.print(_run(_with_runtime(settings, in_plan)))
        return
    if None in (ram, disk, cpu):
        raise _fail("A game server needs --ram, --disk and --cpu with --egg.")

    async def on_panel(runtime: Runtime) -> str:
        if runtime.games is None:
            raise ConfigError("Game servers need a panel: set [pterodactyl] url and api_key.")
        assert egg is not None and ram is not None and disk is not None and cpu is not None
        made = await runtime.games.create(
            owner, name, egg, ram=ram, disk=disk, cpu=cpu, actor=_operator()
        )
        return made.public_id

    out.print(_run(_with_runtime(settings, on_panel)))


@servers_app.command("delete")
def servers_delete(
    server_id: Annotated[str, typer.Argument(metavar="ID")],
    config: ConfigOption = None,
) -> None:
    """Remove a server: a process is ended at once; a game server is deleted on the panel."""

    async def work(runtime: Runtime) -> str:
        if runtime.games is not None and await runtime.games.is_game_server(server_id):
            return (await runtime.games.delete(server_id, _operator())).name
        return (await runtime.hosting.delete(server_id, _operator())).name

    name = _run(_with_runtime(_settings(config), work))
    out.print(f"deleted server {server_id} ({name})")


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _fail(f"--due {value!r} is not a date like 2026-12-31") from None


@invoices_app.command("create")
def invoices_create(
    account: Annotated[str, typer.Option(help="Account id, username or any linked id.")],
    amount: Annotated[str, typer.Option(help="Exact amount, such as 9.99.")],
    due: Annotated[str, typer.Option(help="Due date, YYYY-MM-DD.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "USD",
    config: ConfigOption = None,
) -> None:
    """Create an unpaid invoice; prints its id alone on the last line."""
    due_date = _parse_day(due)

    async def work(runtime: Runtime, session: AsyncSession) -> str:
        owner = await accounts.resolve(session, account)
        made = await billing.create(session, owner, amount, currency, due_date, _operator())
        return made.public_id

    out.print(_transact(config, work))


def _settle_invoice(config: Path | None, invoice_id: str, pay: bool) -> None:
    async def work(runtime: Runtime, session: AsyncSession) -> str:
        settle = billing.pay if pay else billing.void
        made = await settle(session, invoice_id, _operator())
        return f"{made.amount} {made.currency}"

    amount = _transact(config, work)
    out.print(f"invoice {invoice_id} ({amount}) {'paid' if pay else 'voided'}")


@invoices_app.command("pay")
def invoices_pay(
    invoice_id: Annotated[str, typer.Argument(metavar="ID")], config: ConfigOption = None
) -> None:
    """Mark an unpaid invoice paid (once)."""
    _settle_invoice(config, invoice_id, pay=True)


@invoices_app.command("void")
def invoices_void(
    invoice_id: Annotated[str, typer.Argument(metavar="ID")], config: ConfigOption = None
) -> None:
    """Void an unpaid invoice (once)."""
    _settle_invoice(config, invoice_id, pay=False)


@directory_app.command("set")
def directory_set(
    kind: Annotated[str, typer.Argument(help="role, channel or command")],
    key: Annotated[str, typer.Argument(help="Its Discord id (a command: its name).")],
    name: Annotated[str, typer.Argument(help="Its name.")],
    detail: Annotated[
        str,
        typer.Option(help="A role's colour (#FF0000), a channel's type (0), a command's category."),
    ] = "",
    config: ConfigOption = None,
) -> None:
    """Add or replace a role, channel or command (until a Discord connector reports them)."""

    async def work(runtime: Runtime, session: AsyncSession) -> None:
        await community.put_directory_entry(session, kind, key, name, detail, _operator())

    _transact(config, work)
    out.print(f"{kind} {key} ({name}) set")


@directory_app.command("add-member")
def directory_add_member(
    member_id: Annotated[str, typer.Argument(metavar="ID", help="The member's Discord id.")],
    username: Annotated[str, typer.Option(help="Their user name.")],
    role: Annotated[
        list[str] | None, typer.Option(help="A role id they hold (repeatable).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Add or replace a guild member (Rustmail's members, and who may open tickets)."""

    async def work(runtime: Runtime, session: AsyncSession) -> None:
        await community.put_member(session, member_id, username, role or [], _operator())

    _transact(config, work)
    out.print(f"member {member_id} ({username}) set")


@directory_app.command("add-role")
def directory_add_role(
    role_id: Annotated[str, typer.Argument(metavar="ID", help="The role's Discord id.")],
    name: Annotated[str, typer.Option(help="The role's name.")],
    color: Annotated[int, typer.Option(min=0, max=0xFFFFFF, help="Discord colour.")] = 0,
    config: ConfigOption = None,
) -> None:
    """Add or replace a guild role."""

    async def work(runtime: Runtime, session: AsyncSession) -> None:
        await community.put_directory_entry(
            session, "role", role_id, name, f"#{color:06X}", _operator()
        )

    _transact(config, work)
    out.print(f"role {role_id} ({name}) set")


@directory_app.command("remove")
def directory_remove(
    kind: Annotated[str, typer.Argument(help="role, channel or command")],
    key: Annotated[str, typer.Argument()],
    config: ConfigOption = None,
) -> None:
    """Remove a role, channel or command."""

    async def work(runtime: Runtime, session: AsyncSession) -> bool:
        return await community.remove_directory_entry(session, kind, key)

    if not _transact(config, work):
        raise _fail(f"there is no {kind} {key}")
    out.print(f"{kind} {key} removed")


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="http:// or https:// URL that receives POSTs.")],
    event: Annotated[list[str], typer.Option(help="An event name, or * for all (repeatable).")],
    config: ConfigOption = None,
) -> None:
    """Add an endpoint; prints its id alone, then its signing secret alone on the last line."""

    async def work(runtime: Runtime) -> tuple[int, str]:
        return await runtime.webhooks.add(url, event, _operator())

    endpoint_id, secret = _run(_with_runtime(_settings(config), work))
    err.print(f"Webhook #{endpoint_id} added. Its signing secret is shown once; keep it.")
    out.print(endpoint_id)
    out.print(secret)


@webhooks_app.command("list")
def webhooks_list(config: ConfigOption = None) -> None:
    """List endpoints, the events they receive, and their state."""

    async def work(runtime: Runtime, session: AsyncSession) -> list[Any]:
        return await runtime.webhooks.endpoints(session)

    table = Table("id", "url", "events", "created", "pending", "state")
    for endpoint in _transact(config, work, write=False):
        state = f"failing since {_when(endpoint.failing_since)}" if endpoint.failing_since else "ok"
        table.add_row(
            str(endpoint.id),
            endpoint.url,
            " ".join(endpoint.events),
            _when(endpoint.created_at),
            str(endpoint.pending),
            state,
        )
    out.print(table)


@webhooks_app.command("remove")
def webhooks_remove(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID")], config: ConfigOption = None
) -> None:
    """Remove an endpoint and its pending deliveries."""

    async def work(runtime: Runtime, session: AsyncSession) -> str:
        return await runtime.webhooks.remove(session, endpoint_id, _operator())

    url = _transact(config, work)
    out.print(f"removed webhook {endpoint_id} ({url})")


@webhooks_app.command("test")
def webhooks_test(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID")], config: ConfigOption = None
) -> None:
    """Send a signed webhook.test event now and say how the endpoint answered."""

    async def work(runtime: Runtime) -> Any:
        return await runtime.webhooks.send_test(endpoint_id)

    outcome = _run(_with_runtime(_settings(config), work))
    answer = f"HTTP {outcome.status_code}" if outcome.status_code else outcome.error
    out.print(f"webhook {endpoint_id}: {answer} in {outcome.duration_ms} ms")
    if not outcome.ok:
        raise typer.Exit(1)


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    endpoint_id: Annotated[int, typer.Argument(metavar="ID")],
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
) -> None:
    """Recent delivery attempts to an endpoint, newest first."""

    async def work(runtime: Runtime, session: AsyncSession) -> list[Any]:
        return await runtime.webhooks.attempts(session, endpoint_id, limit)

    table = Table("delivery", "event", "attempted", "status", "ms", "delivery state")
    for attempt in _transact(config, work, write=False):
        table.add_row(
            str(attempt.delivery_id),
            attempt.event,
            _when(attempt.attempted_at),
            str(attempt.status_code) if attempt.status_code else (attempt.error or "-"),
            str(attempt.duration_ms),
            attempt.delivery_status,
        )
    out.print(table)


@tickets_app.command("close")
def tickets_close(
    ticket_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str | None, typer.Option(help="Why; kept with the transcript.")] = None,
    config: ConfigOption = None,
) -> None:
    """Close an open ticket (its member may then open a new one).

    With Discord connected, the serving process then tells the member, posts the
    transcript to the log channel and deletes the ticket's channel.
    """

    async def work(runtime: Runtime, session: AsyncSession) -> str:
        discord = runtime.settings.discord
        on_discord = discord.connects and discord.modmail.enabled
        closed = await support.close_ticket(
            session, ticket_id, _operator(), reason=reason, on_platform=on_discord
        )
        return closed.user_name

    user_name = _transact(config, work)
    out.print(f"closed ticket {ticket_id} ({user_name})")


@tickets_app.command("transcript")
def tickets_transcript(
    ticket_id: Annotated[str, typer.Argument(metavar="ID")], config: ConfigOption = None
) -> None:
    """Print a ticket's transcript: what the member and staff wrote, and staff notes."""

    async def work(runtime: Runtime, session: AsyncSession) -> str:
        return support.render_transcript(*await support.transcript(session, ticket_id))

    out.print(_transact(config, work, write=False), markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    app()
