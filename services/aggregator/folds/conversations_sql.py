"""The conversation fold's SQL: `call_analyses` and `conversation_rollups` (the pure part:
conversations.py).

A call and its transcript may be folded by different batches, in either order, by consumers of
different partitions at the same time (a `call.transcribed` is keyed by its own rep or contact). A
batch reads both sides under a transaction-scoped advisory lock per tenant, so the batches of one
tenant run this fold one after the other and each sees what those before it committed:

- a transcript whose call is not in the batch takes the call's facts from the event archive (by
  primary key), which holds every call folded so far and this batch's own; a call not archived yet
  leaves the row waiting without facts;
- a call completes the waiting row of its transcript, if there is one. Calls are not stored
  otherwise: the archive has them.

Batches of a tenant queue on its watermark row later in the same transaction anyway, so the lock
moves the queue, little more. Batches without calls or transcripts do nothing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import orjson

from services.aggregator.erasure import erased_contact
from services.aggregator.fold import Deltas, FoldInput
from services.aggregator.folds.conversations import (
    CALL_COMPLETED,
    Analysed,
    Call,
    Facts,
    Key,
    select,
    settle,
)
from services.aggregator.folds.rollups_sql import additive_upsert
from services.aggregator.store import columns, insert_rows, zones
from services.core.events import SCHEMA_HEADER
from services.core.models import CONVERSATION_COUNTERS, ConversationRollup
from services.core.models.conversations import CALL_METRICS, COUNT_METRICS
from services.core.wire import Event, decode

TABLES = ("call_analyses", "conversation_rollups")
# The two-key advisory lock space, apart from the single-key REBUILD_LOCK_KEY and the leads fold's.
_LOCK_CLASS = 0xC0417

LOCK_TENANTS = """
SELECT count(pg_advisory_xact_lock($1, k))
FROM (SELECT DISTINCT hashtext(t) AS k FROM unnest($2::text[]) AS t ORDER BY k) AS s
"""
_METRICS = ", ".join(CALL_METRICS)
_COLUMNS = f"""
c.tenant, c.call_event_id, c.rep_id, c.contact_id, c.occurred_at, c.local_day, c.duration_s, c.talk_reported,
c.transcript_event_id, c.transcript_received_at, c.words, c.rep_speech_s, c.buyer_speech_s, {_METRICS},
c.moments::text AS moments, c.erased_at IS NOT NULL AS erased
"""
# The rows of the calls whose transcripts the batch brings.
LOAD = f"""
SELECT {_COLUMNS}
FROM unnest($1::text[], $2::text[]) AS u(tenant, call_event_id)
JOIN call_analyses c ON c.tenant = u.tenant AND c.call_event_id = u.call_event_id
"""
# For the batch's other calls, the rows waiting for them. Most tenants have none: one probe of the
# partial index of waiting rows per tenant says so, before any call id is sent.
WAITING_TENANTS = """
SELECT t FROM unnest($1::text[]) AS t
WHERE EXISTS (SELECT 1 FROM call_analyses c WHERE c.tenant = t AND c.occurred_at IS NULL)
"""
LOAD_WAITING = f"""
SELECT {_COLUMNS} FROM call_analyses c
WHERE c.tenant = any($1::text[]) AND c.call_event_id = any($2::text[]) AND c.occurred_at IS NULL
"""
# The archived call without its transcript and attributes, decoded as the live fold decodes it.
ARCHIVED_CALLS = f"""
SELECT e.rep_id, (e.payload - 'transcript' - 'attributes')::text AS payload
FROM unnest($1::text[], $2::text[]) AS u(tenant, event_id)
JOIN events e ON e.tenant = u.tenant AND e.event_id = u.event_id AND e.type = '{CALL_COMPLETED}'
"""
# The columns a row is saved with besides its key, and their types; `moments` is JSON text.
_SAVED: tuple[tuple[str, str], ...] = (
    ("rep_id", "text"), ("contact_id", "text"), ("occurred_at", "timestamptz"), ("local_day", "date"),
    ("duration_s", "numeric"), ("talk_reported", "bool"), ("transcript_event_id", "text"),
    ("transcript_received_at", "timestamptz"), ("words", "int"), ("rep_speech_s", "float8"),
    ("buyer_speech_s", "float8"),
    *((m, "int" if m in COUNT_METRICS else "float8") for m in CALL_METRICS),
    ("moments", "text"),
)  # fmt: skip
_NAMES = ", ".join(name for name, _ in _SAVED)
_ARRAYS = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(_SAVED, start=3))
SAVE = f"""
INSERT INTO call_analyses AS c (tenant, call_event_id, {_NAMES}, erased_at)
SELECT tenant, call_event_id, {_NAMES.replace("moments", "moments::jsonb")}, CASE WHEN erased THEN now() END
FROM unnest($1::text[], $2::text[], {_ARRAYS}, ${len(_SAVED) + 3}::bool[])
  AS u(tenant, call_event_id, {_NAMES}, erased)
ORDER BY 1, 2
ON CONFLICT (tenant, call_event_id) DO UPDATE
SET ({_NAMES}, erased_at) =
    ({", ".join(f"EXCLUDED.{name}" for name, _ in _SAVED)}, coalesce(c.erased_at, EXCLUDED.erased_at))
"""
UPSERT_ROLLUPS = additive_upsert(ConversationRollup, ("tenant", "rep_id", "day"), CONVERSATION_COUNTERS)


async def apply(conn: asyncpg.Connection, new: FoldInput) -> Deltas | None:
    """Fold the batch's calls and transcripts into `call_analyses`; returns the talk_ratio feed."""
    batch = select(new.events)
    if batch is None:
        return None
    await conn.execute(LOCK_TENANTS, _LOCK_CLASS, batch.tenants())
    stored: dict[Key, Call] = {}
    if batch.transcripts:
        stored.update(_by_key(await conn.fetch(LOAD, *columns(sorted(batch.transcripts)))))
    stored.update(await _waiting_for(conn, [k for k in batch.calls if k not in batch.transcripts]))
    if not batch.transcripts and not stored:
        return None  # calls without transcripts, none of them awaited: the common batch
    wanted = [k for k in batch.transcripts if k not in batch.calls and _waiting(stored.get(k))]
    archived = await _archived(conn, wanted)
    zone_of = new.zone_of
    if archived:  # reps the batch does not name may own those calls
        reps = {(t, f.rep_id) for (t, _), f in archived.items()}
        reps |= {(e.tenant, e.rep_id) for e in batch.calls.values()}
        zone_of = (await zones(conn, reps)).zone_of
    settled = settle(batch, stored, archived, zone_of, erased_contact)
    await insert_rows(conn, SAVE, [_row(c) for c in settled.rows])
    await insert_rows(conn, UPSERT_ROLLUPS, [(*k, *v) for k, v in sorted(settled.conversation.items())])
    return settled.talk if settled.talk.rep else None


def _by_key(rows: Sequence[asyncpg.Record]) -> dict[Key, Call]:
    return {(r["tenant"], r["call_event_id"]): _loaded(r) for r in rows}


async def _waiting_for(conn: asyncpg.Connection, calls: Sequence[Key]) -> dict[Key, Call]:
    """The rows of transcripts waiting for these calls."""
    if not calls:
        return {}
    tenants = [r["t"] for r in await conn.fetch(WAITING_TENANTS, sorted({t for t, _ in calls}))]
    if not tenants:
        return {}
    ids = sorted({c for t, c in calls if t in tenants})
    wanted = set(calls)
    return {k: c for k, c in _by_key(await conn.fetch(LOAD_WAITING, tenants, ids)).items() if k in wanted}


def _waiting(call: Call | None) -> bool:
    return call is None or call.facts is None


async def _archived(conn: asyncpg.Connection, keys: Sequence[Key]) -> dict[Key, Facts]:
    """The facts of calls folded in earlier batches, from the event archive."""
    if not keys:
        return {}
    found: dict[Key, Facts] = {}
    for row in await conn.fetch(ARCHIVED_CALLS, *columns(sorted(keys))):
        e = decode(row["payload"].encode(), [SCHEMA_HEADER])
        if isinstance(e, Event):
            e.rep_id = row["rep_id"]
            found[e.key] = Facts.of(e)
    return found


def _loaded(r: asyncpg.Record) -> Call:
    facts = None
    if r["occurred_at"] is not None:
        duration: Decimal | None = r["duration_s"]
        facts = Facts(
            r["rep_id"], r["contact_id"], r["occurred_at"],
            None if duration is None else int(duration.scaleb(3)), bool(r["talk_reported"]),
        )  # fmt: skip
    analysed = Analysed(
        r["transcript_event_id"], r["transcript_received_at"], r["words"],
        tuple(r[m] for m in CALL_METRICS), r["rep_speech_s"], r["buyer_speech_s"],
        tuple(orjson.loads(r["moments"])),
    )  # fmt: skip
    return Call(
        r["tenant"], r["call_event_id"], facts, r["local_day"], analysed, r["contact_id"], r["erased"]
    )


def _row(call: Call) -> tuple[Any, ...]:
    f, a = call.facts, call.analysed
    occurred: datetime | None = f.occurred_at if f else None
    duration = None if f is None or f.duration_ms is None else Decimal(f.duration_ms).scaleb(-3)
    day: date | None = call.day
    return (
        call.tenant, call.call_event_id, f.rep_id if f else None, call.contact_id, occurred, day,
        duration, f.talk_reported if f else None, a.event_id, a.received_at, a.words, a.rep_speech_s,
        a.buyer_speech_s, *a.metrics, orjson.dumps(list(a.moments)).decode(), call.erased,
    )  # fmt: skip
