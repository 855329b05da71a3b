"""`salesloop demo` and `salesloop dev --demo`: a synthetic sales organisation with known structure,
sent through the real endpoints, so the feedback API has something true and checkable to say.

`model` plans the organisation, `simulate` turns it into events, `vendors` writes them in the
vendors' own formats, `credentials` sets the vendor secrets, `send` delivers everything and
`report` prints what the API found.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from services.core.settings import Settings
from services.demo import model, simulate
from services.demo.credentials import VendorSecrets, vendor_secrets
from services.demo.send import TIMEOUT, DemoError, Sender, Summary, register, vendor_routes
from services.demo.simulate import Via
from services.demo.vendors import VENDORS, Credentials, payloads

__all__ = ["DemoError", "Summary", "load", "load_async"]

DEFAULT_REPS = 50
DEFAULT_DAYS = 180
DEFAULT_SEED = 7


def load(
    ingest_url: str,
    api_url: str,
    *,
    tenant: str,
    ingest_key: str,
    api_key: str,
    webhook_secret: str | None = None,
    settings: Settings | None = None,
    reps: int = DEFAULT_REPS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    concurrency: int = 16,
    console: Console | None = None,
) -> Summary:
    """Generate the organisation and send it; blocks until every request was answered."""
    return asyncio.run(
        load_async(
            ingest_url,
            api_url,
            tenant=tenant,
            ingest_key=ingest_key,
            api_key=api_key,
            webhook_secret=webhook_secret,
            settings=settings,
            reps=reps,
            days=days,
            seed=seed,
            concurrency=concurrency,
            console=console,
        )
    )


async def load_async(
    ingest_url: str,
    api_url: str,
    *,
    tenant: str,
    ingest_key: str,
    api_key: str,
    webhook_secret: str | None = None,
    settings: Settings | None = None,
    reps: int = DEFAULT_REPS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    end: datetime | None = None,
    concurrency: int = 16,
    console: Console | None = None,
) -> Summary:
    """`load` for callers that run an event loop already. `end` (default: today, 00:00 UTC) is when
    the simulated period stops; with the same seed and end the events are the same, ids included.

    With `settings` (database access) the vendor secrets are set on the tenant and the vendor routes
    are used; without, every event goes to /v1/events.
    """
    console = console or Console(stderr=True)
    ingest_url, api_url = ingest_url.rstrip("/"), api_url.rstrip("/")
    org = model.build(reps=reps, days=days, seed=seed, end=end or model.demo_end(datetime.now(UTC)))
    events = simulate.events(org)
    found = await vendor_secrets(settings, tenant) if settings is not None else VendorSecrets()
    if settings is None:
        found.notes.append("no database settings: vendor secrets not set, every event goes to /v1/events")
    creds = Credentials(
        ingest_key=ingest_key,
        webhook_secret=webhook_secret,
        hubspot=found.hubspot,
        twilio=found.twilio,
        aircall=found.aircall,
        sendgrid=found.sendgrid,
    )
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=limits) as client:
        await _reachable(client, ingest_url, "ingest")
        await _reachable(client, api_url, "API")
        routes = await vendor_routes(client, ingest_url)
        console.print(
            f"demo organisation: {len(org.reps)} reps, {days} days from {org.start}, seed {seed}: "
            f"{len(events):,} events for tenant [bold]{tenant}[/]",
            highlight=False,
        )
        notes = await register(client, api_url, api_key, org)
        requests = payloads(events, tenant, creds, routes)
        with _progress(console) as progress:
            task = progress.add_task("sending", total=len(events))
            sender = Sender(
                ingest_url,
                creds,
                sign_base_url=settings.public_base_url if settings is not None else None,
                concurrency=concurrency,
                on_done=lambda n: progress.advance(task, n),
            )
            summary = await sender.send_all(requests)
    summary.notes = [*found.notes, *notes, *_missing_routes(routes)]
    console.print(summary_table(summary))
    for line in summary.notes:
        console.print(f"[yellow]note:[/] {line}", highlight=False)
    for line in summary.errors:
        console.print(f"[red]error:[/] {line}", highlight=False)
    return summary


def summary_table(summary: Summary) -> Table:
    table = Table(title="demo load", title_justify="left")
    for column in ("route", "requests", "events", "accepted", "ignored", "rejected"):
        table.add_column(column, justify="left" if column == "route" else "right")
    route_names = {"api": "/v1/events", **{v: f"/webhooks/{v}" for v in VENDORS}}
    for via, t in sorted(summary.by_via.items()):
        table.add_row(
            route_names[via], *(f"{n:,}" for n in (t.requests, t.events, t.accepted, t.ignored, t.rejected))
        )
    rate = summary.events / summary.seconds if summary.seconds else 0.0
    table.add_section()
    table.add_row(
        f"total in {summary.seconds:.1f} s ({rate:,.0f} events/s)",
        f"{sum(t.requests for t in summary.by_via.values()):,}",
        *(f"{n:,}" for n in (summary.events, summary.accepted, summary.ignored, summary.rejected)),
    )
    return table


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def _missing_routes(routes: frozenset[Via]) -> list[str]:
    missing = [v for v in VENDORS if v not in routes]
    if not missing:
        return []
    return [f"this ingest has no route for {', '.join(missing)}: those events went to /v1/events"]


async def _reachable(client: httpx.AsyncClient, url: str, name: str) -> None:
    try:
        await client.get(f"{url}/healthz")
    except httpx.HTTPError as exc:
        raise DemoError(f"cannot reach the {name} at {url}: {type(exc).__name__}") from exc
