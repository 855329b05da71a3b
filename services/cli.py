"""The `salesloop` command: every service, the dev stack and the operator commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from services.core.settings import Settings, get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="salesloop: sales instrumentation.")
tenants_app = typer.Typer(no_args_is_help=True, help="Create tenants and set their per-source secrets.")
keys_app = typer.Typer(no_args_is_help=True, help="Create and revoke API keys.")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")

Host = Annotated[str, typer.Option(help="Interface to listen on.")]


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
    from services.dev import DevPorts, run_dev

    raise typer.Exit(
        run_dev(state_dir, DevPorts(ingest_port, api_port, metrics_port, kafka_port), load_demo=demo)
    )


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
    from services.aggregator.consumer import main

    main(_settings(), host, metrics_port)


@app.command()
def api(host: Host = "127.0.0.1", port: Annotated[int, typer.Option()] = 8002) -> None:
    """The feedback API."""
    from services.api.app import main

    main(_settings(), host, port)


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
    """Set a per-source secret (hubspot, salesforce, twilio, aircall, sendgrid, webhooks)."""
    from services.core.tenancy import TenancyError, set_secret

    secret_key = _settings().secret_key.get_secret_value()
    try:
        _with_engine(set_secret, secret_key, slug, source, value)
    except TenancyError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{source} secret of {slug} set", err=True)


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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
