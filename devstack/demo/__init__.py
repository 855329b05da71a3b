"""`salesloop demo` and `salesloop dev --demo`: a synthetic sales organisation with known structure,
sent through the real endpoints, so the feedback API has something true and checkable to say.

`options` says what to generate and where to send it, `model` plans the organisation, `simulate`
turns it into events, `pipeline` adds the deals' close dates, pushes and planted pipeline structure,
`recordings` adds the transcripts of its calls (written by `transcripts` from the lines of
`dialogue`), `billing` its customers' Stripe subscriptions, `vendors` writes them in the vendors'
own formats, `credentials` sets the vendor secrets, `send` delivers everything, `report` prints what
the API found (`report_pipeline` its pipeline section, `report_economics` its unit economics), and
`commands` is what the `salesloop demo` and `salesloop report` commands do.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devstack.demo import billing, model, pipeline, simulate
from devstack.demo.credentials import with_vendor_secrets
from devstack.demo.options import DemoOptions, Endpoints
from devstack.demo.report import figures_table
from devstack.demo.send import TIMEOUT, DemoError, Sender, Summary, register, vendor_routes
from devstack.demo.simulate import Via
from devstack.demo.vendors import VENDORS, Credentials, payloads
from services.core.settings import Settings

__all__ = ["DemoError", "DemoOptions", "Endpoints", "Summary", "load", "load_async"]


def load(
    endpoints: Endpoints,
    options: DemoOptions,
    *,
    settings: Settings | None = None,
    console: Console | None = None,
) -> Summary:
    """Generate the organisation and send it; blocks until every request was answered."""
    return asyncio.run(load_async(endpoints, options, settings=settings, console=console))


async def load_async(
    endpoints: Endpoints,
    options: DemoOptions,
    *,
    settings: Settings | None = None,
    console: Console | None = None,
) -> Summary:
    """`load` for callers that run an event loop already.

    With `settings` (database access) the vendor secrets are set on the tenant and the vendor routes
    are used; without, every event goes to /v1/events.
    """
    console = console or Console(stderr=True)
    ingest_url, api_url = endpoints.ingest_url.rstrip("/"), endpoints.api_url.rstrip("/")
    end = options.end or model.demo_end(datetime.now(UTC))
    org = model.build(reps=options.reps, days=options.days, seed=options.seed, end=end)
    events = billing.with_billing(org, pipeline.events(org, simulate.events(org)))
    creds = Credentials(ingest_key=endpoints.ingest_key, webhook_secret=endpoints.webhook_secret)
    if settings is None:
        found = ["no database settings: vendor secrets not set, every event goes to /v1/events"]
    else:
        creds, found = await with_vendor_secrets(settings, creds, options.tenant)
    async with httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=8)) as client:
        await _reachable(client, ingest_url, "ingest")
        await _reachable(client, api_url, "API")
        routes = await vendor_routes(client, ingest_url)
        console.print(
            f"demo organisation: {len(org.reps)} reps, {options.days} days from {org.start}, "
            f"seed {options.seed}: {len(events):,} events for tenant [bold]{options.tenant}[/]",
            highlight=False,
        )
        notes = await register(client, api_url, endpoints.api_key, org)
        requests = payloads(events, options.tenant, creds, routes)
        with _progress(console) as progress:
            task = progress.add_task("sending", total=len(events))
            sender = Sender(
                ingest_url,
                creds,
                sign_base_url=settings.public_base_url if settings is not None else None,
                concurrency=options.concurrency,
                on_done=lambda n: progress.advance(task, n),
            )
            summary = await sender.send_all(requests)
    summary.notes = [*found, *notes, *_missing_routes(routes)]
    console.print(summary_table(summary))
    for line in summary.notes:
        console.print(f"[yellow]note:[/] {line}", highlight=False)
    for line in summary.errors:
        console.print(f"[red]error:[/] {line}", highlight=False)
    return summary


def summary_table(summary: Summary) -> Table:
    table = figures_table("demo load", ("route", "requests", "events", "accepted", "ignored", "rejected"))
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
