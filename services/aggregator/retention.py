"""Transcript retention (SPEC 5.7): the aggregator erases transcript text older than
SALESLOOP_TRANSCRIPT_RETENTION_DAYS, the way a contact's erasure does, keeping every count.

Every aggregator process runs `run` beside its consumer: a first pass a minute after it starts, then
one an hour (RUN_EVERY_S). A pass erases, oldest first:

- archived transcripts of events that occurred before the cutoff, in transactions of at most
  CHUNK events (each takes the rebuild lock shared, like a batch, and locks only the rows it
  rewrites; rows another aggregator is erasing are skipped): the text of the segments and of the
  moments of the calls they won goes, the analysis stays (services/core/privacy.py);
- dead-lettered messages (`failed_events`): the transcript text of those whose event occurred (or
  that failed) before the cutoff, and the contact of those naming a contact erased after they
  were recorded.
A pass stops after MAX_EVENTS_PER_PASS transcripts and carries on at the next one, so a first pass
over years of history neither holds locks for long nor starves the consumer. Passes are idempotent.

Beside it, `keep_archive` makes the event archive's next monthly partitions and drops the months past
SALESLOOP_ARCHIVE_RETENTION_DAYS (archive_partitions.py): as the aggregator starts, then hourly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby

import asyncpg
import orjson

from services.aggregator import archive_partitions
from services.aggregator.conversation import analyse
from services.aggregator.erasure import analysis_json
from services.aggregator.store import DB_ERRORS
from services.core.db import asyncpg_dsn
from services.core.models.privacy import KEPT_TRANSCRIPT_SQL
from services.core.privacy import (
    erase_message,
    erase_message_key,
    erase_transcript,
    has_kept_text,
    message_contacts,
    pseudonym,
    replace_part,
)
from services.core.privacy_sql import erase_transcripts, erased, pseudonym_keys, take_batch_lock
from services.core.settings import Settings

log = logging.getLogger(__name__)

APPLICATION_NAME = "salesloop-retention"
ARCHIVE_APPLICATION_NAME = "salesloop-archive-partitions"
FIRST_RUN_AFTER_S = 60.0
RUN_EVERY_S = 3600.0
CHUNK = 200
MAX_EVENTS_PER_PASS = 50_000

OLD_TRANSCRIPTS = f"""
SELECT tenant, event_id FROM events
WHERE occurred_at < $1 AND {KEPT_TRANSCRIPT_SQL}
ORDER BY occurred_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
LETTERS = """
SELECT id, tenant, event_id, key, value, failed_at FROM failed_events
WHERE id > $1 AND tenant IS NOT NULL
ORDER BY id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
REWRITE_LETTER = "UPDATE failed_events SET event_id = $2, key = $3, value = $4 WHERE id = $1"


@dataclass(frozen=True)
class PassResult:
    transcripts: int  # archived transcripts erased
    dead_letters: int  # dead-lettered messages rewritten


def cutoff(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.transcript_retention_days)


async def run_pass(pool: asyncpg.Pool, before: datetime, max_events: int = MAX_EVENTS_PER_PASS) -> PassResult:
    """One pass: transcripts that occurred before `before`, at most `max_events` of them."""
    transcripts = 0
    while transcripts < max_events:
        async with pool.acquire() as conn, conn.transaction():
            done = await erase_old_transcripts(conn, before, min(CHUNK, max_events - transcripts))
        transcripts += done
        if done == 0:
            break
    return PassResult(transcripts, await sweep_dead_letters(pool, before))


async def erase_old_transcripts(conn: asyncpg.Connection, before: datetime, limit: int) -> int:
    """Erase up to `limit` archived transcripts of events older than `before` (in the caller's
    transaction); returns how many."""
    await take_batch_lock(conn, exclusive=False)
    rows = await conn.fetch(OLD_TRANSCRIPTS, before, limit)
    now, erased_count = datetime.now(UTC), 0
    for tenant, group in groupby(sorted((r["tenant"], r["event_id"]) for r in rows), key=lambda r: r[0]):
        ids = [event_id for _, event_id in group]
        erased_count += await erase_transcripts(conn, tenant, ids, now, lambda t: analysis_json(analyse(t)))
    return erased_count


async def sweep_dead_letters(pool: asyncpg.Pool, before: datetime) -> int:
    """Rewrite the dead letters that keep old transcript text or an erased contact's id."""
    after, rewritten = 0, 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(LETTERS, after, CHUNK)
            if not rows:
                return rewritten
            after = rows[-1]["id"]
            rewritten += await _sweep(conn, rows, before)


async def _sweep(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], before: datetime) -> int:
    keys = await pseudonym_keys(conn, {r["tenant"] for r in rows})
    named = {
        (r["tenant"], c): pseudonym(keys[r["tenant"]], c)
        for r in rows
        if r["tenant"] in keys
        for c in message_contacts(bytes(r["value"]))
    }
    gone = await erased(conn, [(t, p) for (t, _), p in named.items()])
    now, count = datetime.now(UTC), 0
    for r in rows:
        tenant, value, key, event_id = r["tenant"], bytes(r["value"]), r["key"], r["event_id"]
        for contact in message_contacts(value):
            alias = named.get((tenant, contact))
            if alias is not None and (tenant, alias) in gone:
                value = erase_message(value, contact, alias, now)
                key = erase_message_key(key, tenant, contact, alias)
                event_id = None if event_id is None else replace_part(event_id, contact, alias)
        value = _erase_old_text(value, r["failed_at"], before, now)
        if value != bytes(r["value"]) or key != r["key"]:
            await conn.execute(REWRITE_LETTER, r["id"], event_id, key, value)
            count += 1
    return count


def _erase_old_text(value: bytes, failed_at: datetime, before: datetime, now: datetime) -> bytes:
    if b'"transcript"' not in value:
        return value
    try:
        data = orjson.loads(value)
        occurred = datetime.fromisoformat(data["occurred_at"])
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        return value
    if occurred.tzinfo is None:
        occurred = failed_at
    if not isinstance(data, dict) or not has_kept_text(data) or min(occurred, failed_at) >= before:
        return value
    erase_transcript(data, None, now)
    return orjson.dumps(data)


async def run(settings: Settings) -> None:
    """Pass after pass until cancelled (the aggregator's shutdown); a failed pass is tried next time."""
    pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url.get_secret_value()),
        min_size=0,
        max_size=1,
        timeout=5,
        command_timeout=60,
        server_settings={"application_name": APPLICATION_NAME},
    )
    try:
        await asyncio.sleep(FIRST_RUN_AFTER_S)
        while True:
            try:
                result = await run_pass(pool, cutoff(settings, datetime.now(UTC)))
            except DB_ERRORS as exc:
                log.warning(
                    "transcript retention pass failed; trying again later", extra={"error": repr(exc)}
                )
            else:
                log.info(
                    "transcript retention pass",
                    extra={"transcripts": result.transcripts, "dead_letters": result.dead_letters},
                )
            await asyncio.sleep(RUN_EVERY_S)
    finally:
        await pool.close()


async def keep_archive(settings: Settings) -> None:
    """The archive's partitions, from the aggregator's start until cancelled: made ahead, dropped once
    expired; a failed pass is tried again an hour later."""
    pool = await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url.get_secret_value()),
        min_size=0,
        max_size=1,
        timeout=5,
        command_timeout=None,  # DETACH CONCURRENTLY waits for the batches in flight
        server_settings={"application_name": ARCHIVE_APPLICATION_NAME},
    )
    try:
        while True:
            try:
                await archive_partitions.run_pass(pool, settings, datetime.now(UTC))
            except DB_ERRORS as exc:
                log.warning("archive partition pass failed; trying again later", extra={"error": repr(exc)})
            await asyncio.sleep(RUN_EVERY_S)
    finally:
        await pool.close()
