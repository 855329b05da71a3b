"""The commit protocol: one batch, one Postgres transaction (STYLE 5, SPEC 7).

Archive rows, every fold's rows, rollups, dead letters and the next offsets commit together, so a
batch is either entirely in Postgres with its offsets or not at all, and a redelivered event is
recognised by the archive and never counted twice. The steps, repeated below as `# Step N`:

1. take the rebuild lock shared (`salesloop rebuild` takes it exclusively: no batch commits while the
   rollups are recomputed);
2. resolve vendor identities (rep aliases) of the batch's events and CRM updates to reps;
3. archive the events; those the archive had already are duplicates and go no further;
4. archive the CRM updates, likewise;
5. look up the timezones of the new events' reps and tenants; register reps named for the first time;
6. run every fold of the registry (folds/__init__.py: rollups, deals, certifications, data quality,
   CRM entities, leads), in their lock order;
7. write the rollup deltas and watermarks;
8. record the batch's dead letters (already published to the DLQ topic, checkpoint.py);
9. save the next offsets of every partition in the batch.

Steps 5-7 are `fold_archived`, which `salesloop rebuild` runs on the archive's events and updates
(rebuild.py): live folding and a rebuild run the same folds through the same code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from services.aggregator import folds, store
from services.aggregator.erasure import erase_new
from services.aggregator.fold import Deltas, FoldInput, distinct
from services.aggregator.folds.rollups_sql import write_deltas
from services.aggregator.store import Store
from services.core.crm import CrmUpdate
from services.core.offboarding import without_deleted_tenants
from services.core.wire import Event

# Writes more rows in the batch's transaction: its dead letters (Step 8).
Also = Callable[[asyncpg.Connection], Awaitable[object]]


@dataclass(frozen=True)
class BatchResult:
    folded: list[Event]  # the events this batch archived and counted
    duplicates: int  # deliveries of events archived before or earlier in the same batch
    registered_reps: int


async def commit_batch(
    target: Store,
    events: Sequence[Event],
    offsets: Mapping[int, int],
    updates: Sequence[CrmUpdate] = (),
    also: Also | None = None,
) -> BatchResult:
    """Archive, fold and store one batch and its next offsets in one transaction.

    `offsets` maps every partition of the batch to its next offset, including partitions whose
    messages were all skipped. Of several deliveries of one event (or update) in the batch the first
    counts. `also` writes more rows in the same transaction (the batch's dead letters).
    """
    unique, unique_updates = distinct(events), distinct_updates(updates)
    async with target.transaction() as conn:
        # Step 1: no rebuild in progress, none starts until this batch commits.
        await store.share_rebuild_lock(conn)
        # Deleted tenants' events and updates go no further (services/core/offboarding.py).
        unique, unique_updates = await without_deleted_tenants(conn, unique, unique_updates)
        # Step 2: vendor identities -> reps.
        await store.resolve_aliases(conn, unique)
        await store.resolve_aliases(conn, unique_updates)
        # Events and updates of erased contacts are archived and folded erased (SPEC 5.7).
        await erase_new(conn, unique, unique_updates)
        # Step 3: the archive decides which events are new.
        new = await store.archive_events(conn, unique)
        # Step 4: likewise for CRM updates.
        new_updates = await store.archive_updates(conn, unique_updates)
        # Steps 5-7: zones and new reps, every fold, the rollup deltas.
        registered = await fold_archived(conn, new, new_updates)
        # Step 8: dead letters.
        if also is not None:
            await also(conn)
        # Step 9: offsets.
        await target.save_offsets(conn, dict(offsets))
    return BatchResult(new, len(events) - len(new), registered)


async def fold_archived(
    conn: asyncpg.Connection, events: Sequence[Event], updates: Sequence[CrmUpdate]
) -> int:
    """Steps 5-7 for archived events and updates that no fold has seen yet (the batch's new ones, or
    the archive's during a rebuild). Returns how many reps were registered."""
    if not events and not updates:
        return 0
    # Step 5: timezones of the events' reps and tenants; reps named for the first time.
    zones = await store.zones(conn, _zone_pairs(events))
    registered = await store.register_reps(conn, zones.unknown)
    # Step 6: every fold, in the registry's (lock) order.
    new = FoldInput(events, updates, zones.zone_of)
    deltas: Deltas | None = None
    for fold in folds.FOLDS:
        extra = await fold.apply(conn, new)
        if extra is None:
            continue
        if deltas is None:
            deltas = extra  # the rollup fold's, usually: taken as is rather than copied
        else:
            deltas.merge(extra)
    # Step 7: rollups and watermarks, once for all folds.
    if deltas is not None:
        await write_deltas(conn, deltas)
    return registered


def distinct_updates(updates: Iterable[CrmUpdate]) -> list[CrmUpdate]:
    """The first delivery of each (tenant, update_id), in stream order."""
    unique: dict[tuple[str, str], CrmUpdate] = {}
    for u in updates:
        unique.setdefault((u.tenant, u.update_id), u)
    return list(unique.values())


def _zone_pairs(events: Sequence[Event]) -> list[tuple[str, str | None]]:
    return list({(e.tenant, e.rep_id) for e in events} | {(e.tenant, None) for e in events})
