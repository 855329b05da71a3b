"""Transcript retention (SPEC 5.7): a pass erases the text of transcripts older than the cutoff, in the
archive, in the moments of their calls and in dead letters, keeps newer ones, and changes no count,
also after a rebuild; passes are bounded and idempotent. And dead letters of an erased contact
recorded after its erasure are erased by the next pass.

The events are dated 1991 against a cutoff in 1992, so that a pass over the shared database touches
no other test's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator import retention
from services.aggregator.store import prepare_connection
from services.api.contacts.queries import erase_contact
from services.core.db import asyncpg_dsn
from services.core.models import CONVERSATION_COUNTERS
from services.core.models.conversations import CALL_METRICS
from services.core.settings import Settings
from tests.aggregator.folds.support import event, rep_rollups, table
from tests.api.test_contacts_erasure import dead_letter, fold, found_in, rebuild_tenant, transcript
from tests.conftest import Stack
from tests.factories import TenantFactory

CUTOFF = datetime(1992, 1, 1, tzinfo=UTC)
OLD, NEW = "1991-03-01T10:00:00Z", "2026-11-01T10:00:00Z"


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(
        asyncpg_dsn(stack.database_url), min_size=0, max_size=4, init=prepare_connection
    )
    yield p
    await p.close()


def phrases(*names: str) -> dict[str, str]:
    tag = secrets.token_hex(4)
    return {name: f"{name}{tag}" for name in names}


async def conversation_counts(pool: asyncpg.Pool, tenant: str) -> dict[str, Any]:
    return {
        "rep": await rep_rollups(pool, tenant),
        "conversation": await table(
            pool, "conversation_rollups", tenant, "rep_id", "day", *CONVERSATION_COUNTERS
        ),
        "analyses": await table(
            pool, "call_analyses", tenant, "call_event_id", "contact_id", "words", *CALL_METRICS,
            "jsonb_array_length(moments)", "rep_speech_s", "buyer_speech_s",
        ),
    }  # fmt: skip


def test_the_cutoff_is_the_setting_in_days() -> None:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    assert retention.cutoff(Settings(env="test"), now) == datetime(2025, 12, 3, tzinfo=UTC)
    assert retention.cutoff(Settings(env="test", transcript_retention_days=30), now) == datetime(
        2026, 11, 3, tzinfo=UTC
    )


async def test_a_pass_erases_old_transcript_text_only(pool: asyncpg.Pool, tenants: TenantFactory) -> None:
    t = (await tenants.create()).slug
    p = phrases("oldcall", "oldlate", "oldlost", "newcall", "olddead", "newdead")
    events = [
        event(t, "call.completed", OLD, rep_id="r1", contact_id="c1", event_id="old-1", duration_s=60,
              transcript=transcript(p["oldcall"])),
        event(t, "call.completed", OLD, rep_id="r1", contact_id="c2", event_id="old-2", duration_s=60),
        # Two transcripts of the second call: the later delivered wins, the other one lost.
        event(t, "call.transcribed", OLD, event_id="old-2-a", call_event_id="old-2",
              transcript=transcript(p["oldlost"]), received_at="2026-12-01T00:00:00+00:00"),
        event(t, "call.transcribed", OLD, event_id="old-2-b", call_event_id="old-2",
              transcript=transcript(p["oldlate"]), received_at="2026-12-01T00:00:01+00:00"),
        event(t, "call.completed", NEW, rep_id="r1", contact_id="c3", event_id="new-1", duration_s=60,
              transcript=transcript(p["newcall"])),
    ]  # fmt: skip
    await fold(pool, events)
    for i, (phrase, at) in enumerate(((p["olddead"], OLD), (p["newdead"], NEW))):
        body = {"tenant": t, "event_id": f"dl-{i}-{t}", "type": "call.completed", "occurred_at": at,
                "received_at": at, "source": "api", "contact_id": "c9",
                "transcript": transcript(phrase)}  # fmt: skip
        await dead_letter(pool, body, secrets.randbelow(10**9))
    before = await conversation_counts(pool, t)

    # Bounded: one transcript, then the rest.
    first = await retention.run_pass(pool, CUTOFF, max_events=1)
    assert first.transcripts == 1
    rest = await retention.run_pass(pool, CUTOFF)
    assert rest.transcripts == 2
    assert first.dead_letters + rest.dead_letters >= 1

    for name in ("oldcall", "oldlate", "oldlost", "olddead"):
        assert await found_in(pool, p[name]) == [], name
    for name in ("newcall", "newdead"):
        assert await found_in(pool, p[name]), name
    assert await conversation_counts(pool, t) == before
    moments = await pool.fetch(
        "SELECT call_event_id, moments::text AS moments, erased_at FROM call_analyses WHERE tenant = $1", t
    )
    texts = {r["call_event_id"]: {m["text"] is None for m in orjson.loads(r["moments"])} for r in moments}
    assert texts == {"old-1": {True}, "old-2": {True}, "new-1": {False}}
    assert {r["erased_at"] for r in moments} == {None}  # the contacts themselves are not erased

    # Idempotent, and neither a rebuild nor a redelivery brings the text back.
    again = await retention.run_pass(pool, CUTOFF)
    assert again.transcripts == 0
    await rebuild_tenant(pool, t)
    assert await conversation_counts(pool, t) == before
    await fold(pool, events)
    assert await conversation_counts(pool, t) == before
    for name in ("oldcall", "oldlate", "oldlost"):
        assert await found_in(pool, p[name]) == [], name


async def test_a_pass_erases_dead_letters_of_contacts_erased_before_them(
    pool: asyncpg.Pool, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    t = (await tenants.create()).slug
    contact, p = f"jane-{secrets.token_hex(4)}", phrases("dead")
    await erase_contact(engine, t, contact)
    body = {"tenant": t, "event_id": f"dl-{t}", "type": "call.completed", "occurred_at": NEW,
            "received_at": NEW, "source": "api", "contact_id": contact,
            "transcript": transcript(p["dead"])}  # fmt: skip
    await dead_letter(pool, body, secrets.randbelow(10**9))
    assert await found_in(pool, contact)

    result = await retention.run_pass(pool, CUTOFF)

    assert result.dead_letters >= 1
    assert await found_in(pool, contact) == []
    assert await found_in(pool, p["dead"]) == []


async def test_the_aggregator_runs_passes_until_stopped(
    pool: asyncpg.Pool, stack: Stack, tenants: TenantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    t, p = (await tenants.create()).slug, phrases("loop")
    await fold(
        pool,
        [event(t, "call.completed", OLD, rep_id="r1", event_id="loop-1", transcript=transcript(p["loop"]))],
    )
    monkeypatch.setattr(retention, "FIRST_RUN_AFTER_S", 0.0)
    # 35 years: the pass erases what is older, as SALESLOOP_TRANSCRIPT_RETENTION_DAYS says.
    task = asyncio.create_task(retention.run(stack.settings(transcript_retention_days=35 * 365)))
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while await found_in(pool, p["loop"]):
            assert asyncio.get_running_loop().time() < deadline, "no pass erased the old transcript"
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert task.cancelled()
