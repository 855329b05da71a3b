"""The SQL that erasure shares between the API (`DELETE /v1/contacts/{id}`) and the aggregator (erasure
of new events, transcript retention): pseudonym keys, the register, and erasing archived transcripts.
The rules of what erased data looks like are services/core/privacy.py's.

Every erasure runs under the aggregator's rebuild lock (services/aggregator/store.py): a contact's
erasure takes it exclusively, so no batch commits between the register saying "erased" and the rows
being erased, and no rebuild folds rows that are being erased; the retention pass takes it shared, as
a batch does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from services.core.models.conversations import CALL_METRICS
from services.core.models.privacy import KEPT_TRANSCRIPT_SQL
from services.core.privacy import analysis_of_row, erase_transcript, new_key

# services.aggregator.store.REBUILD_LOCK_KEY (tests/aggregator/test_erasure.py checks they agree):
# batch transactions hold it shared, `salesloop rebuild` exclusively.
BATCH_LOCK_KEY = 0x5A1E5100

# An analysis computed from a transcript's segments (the aggregator's), as privacy.ANALYSIS_FIELDS.
Analyse = Callable[[list[Any]], Mapping[str, Any]]

KEYS = "SELECT tenant, key FROM contact_pseudonym_keys WHERE tenant = any($1::text[])"
NEW_KEY = """
INSERT INTO contact_pseudonym_keys (tenant, key) VALUES ($1, $2)
ON CONFLICT (tenant) DO NOTHING
"""
REGISTER = """
INSERT INTO contact_erasures AS r (tenant, pseudonym) VALUES ($1, $2)
ON CONFLICT (tenant, pseudonym) DO UPDATE SET last_requested_at = now()
RETURNING r.erased_at
"""
ERASED = """
SELECT u.tenant, u.pseudonym
FROM unnest($1::text[], $2::text[]) AS u(tenant, pseudonym)
JOIN contact_erasures r ON r.tenant = u.tenant AND r.pseudonym = u.pseudonym
"""
KEPT_TRANSCRIPTS = f"""
SELECT event_id, payload::text AS payload FROM events
WHERE tenant = $1 AND event_id = any($2::text[]) AND {KEPT_TRANSCRIPT_SQL}
ORDER BY event_id
FOR UPDATE
"""
ANALYSES = f"""
SELECT transcript_event_id, words, rep_speech_s, buyer_speech_s, moments::text AS moments,
       {", ".join(CALL_METRICS)}
FROM call_analyses
WHERE tenant = $1 AND call_event_id = any($2::text[]) AND transcript_event_id = any($3::text[])
"""
SET_PAYLOADS = """
UPDATE events AS e SET payload = u.payload::jsonb
FROM unnest($2::text[], $3::text[]) AS u(event_id, payload)
WHERE e.tenant = $1 AND e.event_id = u.event_id
"""
# `call_analyses.moments` (of the row `c`) keeping their tactic, speaker and start, not their text.
ERASED_MOMENTS_SQL = """(SELECT coalesce(jsonb_agg(m || '{"text": null}'::jsonb ORDER BY n), '[]'::jsonb)
 FROM jsonb_array_elements(c.moments) WITH ORDINALITY AS x(m, n))"""
# The moments of the calls these transcripts won.
ERASE_MOMENTS = f"""
UPDATE call_analyses AS c SET moments = {ERASED_MOMENTS_SQL}
WHERE c.tenant = $1 AND c.call_event_id = any($2::text[]) AND c.transcript_event_id = any($3::text[])
"""


async def take_batch_lock(conn: asyncpg.Connection, *, exclusive: bool) -> None:
    sql = "SELECT pg_advisory_xact_lock($1)" if exclusive else "SELECT pg_advisory_xact_lock_shared($1)"
    await conn.execute(sql, BATCH_LOCK_KEY)


async def pseudonym_keys(conn: asyncpg.Connection, tenants: Iterable[str]) -> dict[str, bytes]:
    """The pseudonym keys of those of `tenants` that erased a contact (the others have none)."""
    return {r["tenant"]: bytes(r["key"]) for r in await conn.fetch(KEYS, sorted(set(tenants)))}


async def ensure_key(conn: asyncpg.Connection, tenant: str) -> bytes:
    """The tenant's pseudonym key, made now if it has none."""
    await conn.execute(NEW_KEY, tenant, new_key())
    return (await pseudonym_keys(conn, [tenant]))[tenant]


async def register(conn: asyncpg.Connection, tenant: str, pseudonym: str) -> datetime:
    """Record the contact as erased; returns when it first was."""
    erased_at: datetime = await conn.fetchval(REGISTER, tenant, pseudonym)
    return erased_at


async def erased(conn: asyncpg.Connection, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (tenant, pseudonym) pairs are in the register."""
    asked = sorted(set(pairs))
    if not asked:
        return set()
    rows = await conn.fetch(ERASED, [t for t, _ in asked], [p for _, p in asked])
    return {(r["tenant"], r["pseudonym"]) for r in rows}


async def erase_transcripts(
    conn: asyncpg.Connection,
    tenant: str,
    event_ids: Sequence[str],
    at: datetime,
    analyse: Analyse | None = None,
) -> int:
    """Erase the transcript text of these archived events (those that still keep it) and the text of
    the moments of the calls they won. Each keeps its analysis: `analyse`d from the text now, or, with
    no `analyse`, as the call's stored analysis has it (null for a transcript that did not win).
    Returns how many transcripts were erased."""
    if not event_ids:
        return 0
    rows = await conn.fetch(KEPT_TRANSCRIPTS, tenant, sorted(set(event_ids)))
    if not rows:
        return 0
    found = [(row["event_id"], orjson.loads(row["payload"])) for row in rows]
    ids = [event_id for event_id, _ in found]
    calls = sorted({call for _, data in found if (call := call_of(data)) is not None})
    stored = {} if analyse is not None else await _stored_analyses(conn, tenant, calls, ids)
    payloads = []
    for event_id, data in found:
        analysis = analyse(data["transcript"]) if analyse is not None else stored.get(event_id)
        erase_transcript(data, analysis, at)
        payloads.append(orjson.dumps(data).decode())
    await conn.execute(SET_PAYLOADS, tenant, ids, payloads)
    await conn.execute(ERASE_MOMENTS, tenant, calls, ids)
    return len(ids)


def call_of(data: Mapping[str, Any]) -> str | None:
    """The call a transcript belongs to: the event itself, or the call a `call.transcribed` names."""
    kind = data.get("type")
    call = data.get("call_event_id") if kind == "call.transcribed" else data.get("event_id")
    return call if kind in ("call.completed", "call.transcribed") and isinstance(call, str) else None


async def _stored_analyses(
    conn: asyncpg.Connection, tenant: str, calls: list[str], transcripts: list[str]
) -> dict[str, dict[str, Any]]:
    found = await conn.fetch(ANALYSES, tenant, calls, transcripts)
    return {
        r["transcript_event_id"]: analysis_of_row(
            {**dict(r.items()), "moments": orjson.loads(r["moments"])}, CALL_METRICS
        )
        for r in found
    }
