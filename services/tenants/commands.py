"""`salesloop tenants export SLUG DIR` and `salesloop tenants delete SLUG --yes`, added to the
`tenants` commands of services/cli.py by `register`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

# services/cli.py's runner of one-shot admin commands, and its error exit.
WithEngine = Callable[..., Any]
Fail = Callable[[str], typer.Exit]


def register(tenants: typer.Typer, with_engine: WithEngine, fail: Fail) -> None:
    @tenants.command("export")
    def tenants_export(
        slug: str,
        directory: Annotated[Path, typer.Argument(help="A new or empty directory for the files.")],
    ) -> None:
        """Write the tenant's archive, rollups and state as JSON lines files, with a manifest.

        events.jsonl is canonical BuyerEvents: `salesloop import jsonl` loads it into another tenant.
        """
        from services.core.offboarding import OffboardingError
        from services.core.offboarding_export import export_tenant

        try:
            files = with_engine(export_tenant, slug, directory)
        except OffboardingError as exc:
            raise fail(str(exc)) from exc
        rows = sum(f.rows for f in files)
        typer.echo(f"tenant {slug} exported to {directory}: {len(files)} files, {rows} rows", err=True)

    @tenants.command("delete")
    def tenants_delete(
        slug: str,
        yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    ) -> None:
        """Erase every row of the tenant in every table, its keys and secrets, in one transaction.

        Its events still in Kafka are dropped by the aggregator. Export first: nothing is kept.
        """
        from services.core.offboarding import OffboardingError, delete_tenant

        if not yes:
            raise fail(
                f"deleting tenant {slug} erases all its data and cannot be undone;"
                f" export it first (salesloop tenants export {slug} DIR), then run again with --yes"
            )
        delete: Callable[..., Awaitable[dict[str, int]]] = delete_tenant
        try:
            deleted = with_engine(delete, slug)
        except OffboardingError as exc:
            raise fail(str(exc)) from exc
        for table, n in deleted.items():
            if n:
                typer.echo(f"  {table}: {n}", err=True)
        typer.echo(
            f"tenant {slug} deleted ({sum(deleted.values())} rows); its events still in Kafka are dropped",
            err=True,
        )
