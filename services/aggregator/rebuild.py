"""`salesloop rebuild`: recompute every rollup and state table of a tenant from the archive.

After a metric definition changes, or once an alias names the rep behind vendor identities that were
unknown (SPEC 4), the rollups are folded again from the event archive (`events`) and the CRM update
archive (`crm_updates`), through the same code the batch transaction runs them with
(`commit.fold_archived`: the registry of folds in folds/__init__.py).

Everything happens in one transaction under `pg_advisory_xact_lock(REBUILD_LOCK_KEY)`: batch
transactions take that lock shared, so none commits while the rollups are recomputed (the aggregators
wait, then carry on from their stored offsets), and readers keep seeing the previous rollups until the
rebuild commits. Per tenant:

1. delete every fold's rows (`DERIVED_TABLES`: rollups, watermark, state tables);
2. resolve the archive's unresolved vendor identities through the current aliases (and keep the
   resolved rep in the archive, as the live fold would have);
3. fold the archived events, then the archived CRM updates, in chunks; the folds do not depend on
   order or batching, so the result is what live folding of the same archive gives.

Once archive retention dropped months of the archive (SALESLOOP_ARCHIVE_RETENTION_DAYS,
archive_partitions.py), a tenant that has rollups from before the archive's horizon cannot be
recomputed: its events of those months are gone, while its rollups and folded state keep them. The
rebuild then refuses, naming the tenants and the first month kept, and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from services.aggregator import archive_partitions
from services.aggregator.commit import fold_archived
from services.aggregator.folds import DERIVED_TABLES
from services.aggregator.store import (
    ARCHIVE_SIZES,
    ARCHIVED_EVENTS,
    ARCHIVED_UPDATES,
    REATTRIBUTE_EVENTS,
    REATTRIBUTE_UPDATES,
    affected,
    archived_update,
    take_rebuild_lock,
)
from services.core.crm import CrmUpdate
from services.core.db import asyncpg_dsn
from services.core.events import SCHEMA_HEADER
from services.core.settings import Settings
from services.core.wire import Event, Malformed, decode

log = logging.getLogger(__name__)

APPLICATION_NAME = "salesloop-rebuild"
CHUNK = 5_000

ALL_TENANTS = "SELECT slug FROM tenants UNION SELECT tenant FROM tenant_watermarks ORDER BY 1"
KNOWN_TENANT = """
SELECT EXISTS (SELECT 1 FROM tenants WHERE slug = $1)
    OR EXISTS (SELECT 1 FROM tenant_watermarks WHERE tenant = $1)
    OR EXISTS (SELECT 1 FROM events WHERE tenant = $1)
"""


# Whether a tenant folded events on days the archive no longer holds: rollup days are the reps' and
# tenant's local days, so the horizon's own day counts as gone too.
FOLDED_BEFORE = """
SELECT EXISTS (SELECT 1 FROM rollup_rep_daily WHERE tenant = $1 AND day <= $2)
    OR EXISTS (SELECT 1 FROM rollup_channel_daily WHERE tenant = $1 AND day <= $2)
"""


class RebuildError(Exception):
    """The rebuild cannot run as asked (answer with exit code 1)."""


@dataclass(frozen=True)
class TenantRebuild:
    tenant: str
    events: int
    updates: int
    reattributed_events: int
    reattributed_updates: int
    skipped: int  # archived messages that no longer decode (logged)


async def rebuild(
    conn: asyncpg.Connection, tenants: Sequence[str], progress: Progress | None = None
) -> list[TenantRebuild]:
    """Recompute `tenants` inside the caller's transaction, which then holds the rebuild lock."""
    await take_rebuild_lock(conn)
    await refuse_past_horizon(conn, tenants)
    return [await _rebuild_tenant(conn, tenant, progress) for tenant in tenants]


async def refuse_past_horizon(conn: asyncpg.Connection, tenants: Sequence[str]) -> None:
    """RebuildError if retention dropped archive months that any of `tenants` has rollups of."""
    kept_from = await archive_partitions.horizon(conn)
    if kept_from is None:
        return
    folded = [t for t in tenants if await conn.fetchval(FOLDED_BEFORE, t, kept_from.date())]
    if folded:
        raise RebuildError(
            f"the archive keeps the events that occurred from {kept_from:%Y-%m-%d} on (archive retention "
            f"dropped the months before), and {', '.join(folded[:5])}"
            f"{f' and {len(folded) - 5} more' if len(folded) > 5 else ''} folded events before then, "
            "which a rebuild cannot fold again: nothing was changed. Their rollups and folded state keep "
            "those months as they were folded (docs/operations.md, 'Archive partitions and retention')"
        )


async def tenants_to_rebuild(conn: asyncpg.Connection, tenant: str | None) -> list[str]:
    if tenant is None:
        return [r["slug"] for r in await conn.fetch(ALL_TENANTS)]
    if not await conn.fetchval(KNOWN_TENANT, tenant):
        raise RebuildError(f"unknown tenant {tenant!r}")
    return [tenant]


async def _rebuild_tenant(conn: asyncpg.Connection, tenant: str, progress: Progress | None) -> TenantRebuild:
    for table in DERIVED_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE tenant = $1", tenant)
    events_resolved = affected(await conn.execute(REATTRIBUTE_EVENTS, tenant))
    updates_resolved = affected(await conn.execute(REATTRIBUTE_UPDATES, tenant))
    sizes = await conn.fetchrow(ARCHIVE_SIZES, tenant)
    task = progress.add_task(tenant, total=sizes["events"] + sizes["updates"]) if progress else None

    skipped = 0
    chunk: list[Event] = []
    async for row in conn.cursor(ARCHIVED_EVENTS, tenant, prefetch=CHUNK):
        e = decode(row["payload"].encode(), [SCHEMA_HEADER])
        if isinstance(e, Malformed):
            skipped += 1
            log.warning("archived event no longer decodes", extra={"tenant": tenant, "detail": e.detail})
            continue
        e.rep_id = row["rep_id"]
        chunk.append(e)
        if len(chunk) >= CHUNK:
            await fold_archived(conn, chunk, ())
            _advance(progress, task, len(chunk))
            chunk = []
    await fold_archived(conn, chunk, ())
    _advance(progress, task, len(chunk))

    updates: list[CrmUpdate] = []
    async for row in conn.cursor(ARCHIVED_UPDATES, tenant, prefetch=CHUNK):
        updates.append(archived_update(row))
        if len(updates) >= CHUNK:
            await fold_archived(conn, [], updates)
            _advance(progress, task, len(updates))
            updates = []
    await fold_archived(conn, [], updates)
    _advance(progress, task, len(updates))
    return TenantRebuild(
        tenant, sizes["events"] - skipped, sizes["updates"], events_resolved, updates_resolved, skipped
    )


def _advance(progress: Progress | None, task: TaskID | None, n: int) -> None:
    if progress is not None and task is not None and n:
        progress.advance(task, n)


def _n(count: int, what: str) -> str:
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


async def run(settings: Settings, tenant: str | None, console: Console) -> list[TenantRebuild]:
    """The command: one connection, one transaction, progress on `console`."""
    try:
        conn = await asyncpg.connect(
            asyncpg_dsn(settings.database_url.get_secret_value()),
            server_settings={"application_name": APPLICATION_NAME},
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise RebuildError(f"cannot connect to the database: {exc}") from exc
    try:
        async with conn.transaction():
            tenants = await tenants_to_rebuild(conn, tenant)
            console.print(f"waiting for batches in flight, then rebuilding {len(tenants)} tenant(s)")
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                results = await rebuild(conn, tenants, progress)
            console.print("committing")
    finally:
        await conn.close()
    for r in results:
        line = f"{r.tenant}: {_n(r.events, 'event')} and {_n(r.updates, 'CRM update')} folded"
        if r.reattributed_events or r.reattributed_updates:
            line += f"; newly attributed to reps: {_n(r.reattributed_events, 'event')}"
            line += f" and {_n(r.reattributed_updates, 'CRM update')}"
        if r.skipped:
            line += f"; {_n(r.skipped, 'archived event')} skipped (no longer valid, see the log)"
        console.print(line, soft_wrap=True)
    return results
