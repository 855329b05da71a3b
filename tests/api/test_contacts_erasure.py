"""DELETE /v1/contacts/{contact_id} (SPEC 5.7): the contact's id and transcript text are nowhere in the
database afterwards, every count is what it was, and neither a rebuild, a redelivery nor a late
transcript brings them back.

A tenant's stream for one contact touches every table that can hold a contact: events (some with
ids that embed the contact id, as HubSpot's do), transcripts on a call and on a later
`call.transcribed` that does not name the contact, CRM updates of the contact and of a deal naming
it, CRM-attributed lead and deal events, leads, deal facts, analysed calls, and a dead letter. The
database is then searched whole: every text, jsonb and bytea column of every table.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from services.aggregator.commit import commit_batch
from services.aggregator.conversation import analyse
from services.aggregator.rebuild import rebuild
from services.aggregator.store import REBUILD_LOCK_KEY, Store, prepare_connection
from services.core.crm import CrmUpdate
from services.core.db import asyncpg_dsn
from services.core.models import CONVERSATION_COUNTERS
from services.core.models.conversations import CALL_METRICS
from services.core.privacy_sql import BATCH_LOCK_KEY
from services.core.tenancy import create_key
from services.core.wire import Event
from tests.aggregator.folds.support import channel_rollups, event, rep_rollups, table, update
from tests.api.factories import bearer
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory

WINDOW = {"from": "2026-10-25", "to": "2026-11-10"}
TEXT_TYPES = ("text", "character varying", "jsonb", "json", "bytea", "ARRAY")


def seg(speaker: str, start: float, end: float, text: str) -> dict[str, Any]:
    return {"speaker": speaker, "start_s": start, "end_s": end, "text": text}


def transcript(phrase: str) -> list[dict[str, Any]]:
    """A call with moments (a label, a calibrated question, "that's right") and the phrase in it."""
    return [
        seg("rep", 0, 6, f"Thanks for taking the call about {phrase}. How do you onboard people today?"),
        seg("buyer", 7, 20, "We do it by hand, it takes weeks and the new hires get lost in the tools."),
        seg("rep", 21, 25, "It sounds like the tools are slowing everyone down."),
        seg("buyer", 25.5, 27, "That's right."),
        seg("rep", 28, 32, "What would a good first month look like for you?"),
        seg("buyer", 33, 45, f"Everyone productive in two weeks, {phrase} included. Can you do that?"),
    ]


class Contact:
    """One contact's stream: ids and phrases unique to this test run."""

    def __init__(self, tenant: str, name: str) -> None:
        tag = secrets.token_hex(4)
        self.tenant = tenant
        self.id = f"{name}-{tag}"
        self.phone = "+1555" + str(int(tag, 16))[:7].rjust(7, "0")
        self.phrases = [f"{name}zebra{tag}", f"{name}quokka{tag}", f"{name}narwhal{tag}"]
        self.ref = secrets.token_hex(4)  # the ids of its calls, e-mails and deal, which do not embed it
        self.deal = f"deal-{self.ref}"

    def events(self) -> list[Event]:
        t, c, ref, day = self.tenant, self.id, self.ref, "2026-11-0"
        return [
            event(t, "lead.created", f"{day}1T09:00:00Z", source="hubspot", contact_id=c, rep_id="r1",
                  channel="paid_search", event_id=f"hubspot:7:1:9:{c}"),
            event(t, "call.completed", f"{day}1T10:00:00Z", rep_id="r1", contact_id=c,
                  event_id=f"call-1-{ref}", direction="outbound", outcome="connected", duration_s=45,
                  transcript=transcript(self.phrases[0]), attributes={"buyer_phone": self.phone}),
            event(t, "call.completed", f"{day}2T10:00:00Z", rep_id="r1", contact_id=c,
                  event_id=f"call-2-{ref}", direction="outbound", outcome="connected", duration_s=45),
            event(t, "call.transcribed", f"{day}2T10:05:00Z", event_id=f"tr-2-{ref}",
                  call_event_id=f"call-2-{ref}", transcript=transcript(self.phrases[1])),
            event(t, "email.sent", f"{day}1T11:00:00Z", rep_id="r1", contact_id=c, event_id=f"mail-{ref}"),
            event(t, "lead.qualified", f"{day}3T09:00:00Z", source="hubspot", contact_id=c, rep_id="r1",
                  stage="mql", event_id=f"hubspot:7:2:9:{c}"),
            event(t, "deal.created", f"{day}3T10:00:00Z", source="hubspot", deal_id=self.deal, rep_id="r1",
                  amount="1000", event_id=f"hubspot:7:3:8:{self.deal}"),
            event(t, "deal.won", f"{day}4T10:00:00Z", source="hubspot", deal_id=self.deal, rep_id="r1",
                  amount="1000", event_id=f"hubspot:7:4:8:{self.deal}"),
        ]  # fmt: skip

    def updates(self) -> list[CrmUpdate]:
        return [
            update(self.tenant, "contact", self.id, "channel", "referral", "2026-11-01T08:00:00Z"),
            update(self.tenant, "deal", self.deal, "contact", self.id, "2026-11-03T10:00:00Z"),
        ]

    def dead_letter(self) -> dict[str, Any]:
        body = {"tenant": self.tenant, "event_id": f"dl-{self.ref}", "type": "call.completed",
                "occurred_at": "2026-11-05T10:00:00Z", "received_at": "2026-11-05T10:00:01Z", "source": "api",
                "rep_id": "r1", "contact_id": self.id, "currency": "EUR", "amount": 1,
                "transcript": transcript(self.phrases[2])}  # fmt: skip
        return body

    @property
    def secrets(self) -> list[str]:
        return [self.id, self.phone, *self.phrases]


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(
        asyncpg_dsn(stack.database_url), min_size=0, max_size=4, init=prepare_connection
    )
    yield p
    await p.close()


async def fold(pool: asyncpg.Pool, events: Sequence[Event], updates: Sequence[CrmUpdate] = ()) -> None:
    await commit_batch(Store(pool, "erasure-tests", "t"), events, {}, updates)


async def dead_letter(pool: asyncpg.Pool, body: dict[str, Any], offset: int) -> None:
    """A dead letter as the aggregator records it (services/aggregator/dlq.py)."""
    key = f"{body['tenant']}:{body['contact_id']}".encode()
    await pool.execute(
        """INSERT INTO failed_events
             (tenant, event_id, topic, partition, "offset", reason, detail, key, value)
           VALUES ($1, $2, 'erasure-tests', 0, $3, 'currency_mismatch', 'currency', $4, $5)""",
        body["tenant"], body["event_id"], offset, key, orjson.dumps(body),
    )  # fmt: skip


async def found_in(pool: asyncpg.Pool, needle: str, but_tenant: str | None = None) -> list[str]:
    """Every column of every table holding `needle`, as "table.column" (rows of `but_tenant` left out)."""
    columns = await pool.fetch(
        """SELECT c.table_name, c.column_name, c.data_type,
                  EXISTS (SELECT 1 FROM information_schema.columns t WHERE t.table_schema = 'public'
                          AND t.table_name = c.table_name AND t.column_name = 'tenant') AS tenanted
           FROM information_schema.columns c JOIN information_schema.tables tb
             ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
            AND tb.table_type = 'BASE TABLE'
           WHERE c.table_schema = 'public' AND c.data_type = any($1::text[])
           ORDER BY 1, 2"""
        , list(TEXT_TYPES),
    )  # fmt: skip
    hits = []
    for col in columns:
        name, column = col["table_name"], col["column_name"]
        where = (
            f"position(convert_to($1, 'UTF8') in \"{column}\") > 0"
            if col["data_type"] == "bytea"
            else f'strpos("{column}"::text, $1) > 0'
        )
        if col["tenanted"] and but_tenant is not None:
            where += " AND tenant IS DISTINCT FROM $2"
            count = await pool.fetchval(f'SELECT count(*) FROM "{name}" WHERE {where}', needle, but_tenant)
        else:
            count = await pool.fetchval(f'SELECT count(*) FROM "{name}" WHERE {where}', needle)
        if count:
            hits.append(f"{name}.{column}")
    return hits


async def counts(pool: asyncpg.Pool, client: httpx.AsyncClient, tenant: TenantCtx) -> dict[str, Any]:
    """Every count and metric of the tenant: rollups, conversation rollups, per-call analyses, leads
    and deals, and the API's answers."""
    t = tenant.slug
    conversation = await table(pool, "conversation_rollups", t, "rep_id", "day", *CONVERSATION_COUNTERS)
    analyses = await table(
        pool, "call_analyses", t, "occurred_at", "words", *CALL_METRICS,
        "jsonb_array_length(moments)", "rep_speech_s", "buyer_speech_s",
    )  # fmt: skip
    leads = await table(pool, "leads", t, "created_at", "channel", "first_touch_at", "speed_s", "mql_at")
    deals = await table(pool, "deal_facts", t, "type", "deal_id", "rep_id", "channel", "amount")
    answers = {}
    for path in ("/v1/reps/r1/metrics", "/v1/demand/channels", "/v1/conversations/reps/r1"):
        answer = await client.get(path, params=WINDOW, headers=bearer(tenant.api_key))
        assert answer.status_code in (200, 404), answer.text
        answers[path] = answer.json() if answer.status_code == 200 else None
    return {
        "rep": await rep_rollups(pool, t),
        "channel": await channel_rollups(pool, t),
        "conversation": conversation,
        "analyses": analyses,
        "leads": leads,
        "deals": deals,
        "answers": answers,
    }


async def erase(client: httpx.AsyncClient, tenant: TenantCtx, contact_id: str) -> dict[str, Any]:
    answer = await client.delete(f"/v1/contacts/{contact_id}", headers=bearer(tenant.api_key))
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def rebuild_tenant(pool: asyncpg.Pool, tenant: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await rebuild(conn, [tenant])


def test_the_api_takes_the_aggregators_batch_lock() -> None:
    assert BATCH_LOCK_KEY == REBUILD_LOCK_KEY


async def test_erasure_leaves_no_trace_and_every_count(
    pool: asyncpg.Pool, client: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    owner, other = await tenants.create(), await tenants.create()
    jane, dave = Contact(owner.slug, "jane"), Contact(owner.slug, "dave")
    twin = Contact(other.slug, "jane")
    twin.id = jane.id  # the same contact id in another tenant is another contact
    for c in (jane, dave, twin):
        await fold(pool, c.events(), c.updates())
    for i, c in enumerate((jane, dave, twin)):
        await dead_letter(pool, c.dead_letter(), i + 1000 * secrets.randbelow(10**6))
    before = await counts(pool, client, owner)
    assert all(before[part] for part in ("conversation", "analyses", "leads", "deals"))

    body = await erase(client, owner, jane.id)

    assert body["contact_id"] == jane.id
    expected = {
        "events": 6, "transcripts": 2, "crm_updates": 2, "crm_entities": 2, "leads": 1, "deal_facts": 2,
        "call_analyses": 2, "failed_events": 1,
    }  # fmt: skip
    assert {table: body["rows"][table] for table in expected} == expected
    for needle in jane.secrets:
        assert await found_in(pool, needle, but_tenant=other.slug) == [], needle
    assert await counts(pool, client, owner) == before
    # Another contact of the tenant, and the same id in another tenant, keep everything.
    for needle in [*dave.secrets, *twin.secrets]:
        assert await found_in(pool, needle), needle

    # A rebuild folds the erased archive to the same numbers, and brings nothing back.
    await rebuild_tenant(pool, owner.slug)
    assert await counts(pool, client, owner) == before
    for needle in jane.secrets:
        assert await found_in(pool, needle, but_tenant=other.slug) == [], needle

    # Erasing again is answered alike, with nothing left to erase.
    again = await erase(client, owner, jane.id)
    assert again["erased_at"] == body["erased_at"]
    assert set(again["rows"].values()) == {0}


async def test_later_deliveries_of_an_erased_contact_are_stored_erased(
    pool: asyncpg.Pool, client: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    owner = await tenants.create()
    jane = Contact(owner.slug, "jane")
    await fold(pool, jane.events(), jane.updates())
    await erase(client, owner, jane.id)
    erased = await counts(pool, client, owner)

    # Redelivered events and updates are recognised as the archived ones: nothing changes.
    await fold(pool, jane.events(), jane.updates())
    assert await counts(pool, client, owner) == erased
    for needle in jane.secrets:
        assert await found_in(pool, needle) == [], needle

    # New facts of the contact are counted, and stored erased: a later transcript of its first call
    # (not naming the contact) replaces the analysis, and an e-mail is one more touch.
    late = [seg("rep", 0, 4, f"So what brings you here, {jane.phrases[2]}?"), seg("buyer", 5, 9, "Growth.")]
    await fold(pool, [
        event(owner.slug, "call.transcribed", "2026-11-06T10:00:00Z", event_id=f"tr-late-{jane.ref}",
              call_event_id=f"call-1-{jane.ref}", transcript=late, received_at="2026-12-02T00:00:00+00:00"),
        event(owner.slug, "email.sent", "2026-11-06T11:00:00Z", rep_id="r1", contact_id=jane.id,
              event_id=f"mail-2-{jane.ref}", attributes={"to": f"{jane.id}@example.com"}),
    ])  # fmt: skip
    for needle in jane.secrets:
        assert await found_in(pool, needle) == [], needle
    after = await counts(pool, client, owner)
    emails = sum(v.get("emails_sent", 0) for v in after["rep"].values())
    assert emails == sum(v.get("emails_sent", 0) for v in erased["rep"].values()) + 1
    expected = analyse(late)
    rows = await pool.fetch(
        f"SELECT words, {', '.join(CALL_METRICS)}, moments::text AS moments, contact_id, erased_at "
        "FROM call_analyses WHERE tenant = $1 AND transcript_event_id = $2",
        owner.slug, f"tr-late-{jane.ref}",
    )  # fmt: skip
    assert len(rows) == 1
    assert rows[0]["words"] == expected.words
    assert [rows[0][m] for m in CALL_METRICS] == [expected.metrics[m] for m in CALL_METRICS]
    assert [m["text"] for m in orjson.loads(rows[0]["moments"])] == [None] * len(expected.moments)
    assert rows[0]["contact_id"] is None
    assert rows[0]["erased_at"] is not None
    # The later e-mail joins the contact's lead, as a touch of the pseudonymous contact.
    assert after["leads"] == erased["leads"]

    # And a rebuild of all this gives the same again.
    await rebuild_tenant(pool, owner.slug)
    assert await counts(pool, client, owner) == after


async def test_a_contact_erased_before_its_first_event(
    pool: asyncpg.Pool, client: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    owner = await tenants.create()
    jane = Contact(owner.slug, "jane")
    body = await erase(client, owner, jane.id)
    assert set(body["rows"].values()) == {0}
    await fold(pool, jane.events(), jane.updates())
    for needle in jane.secrets:
        assert await found_in(pool, needle) == [], needle
    analysed = await pool.fetchval(
        "SELECT sum(calls_analysed) FROM conversation_rollups WHERE tenant = $1", owner.slug
    )
    assert analysed == 2
    # A second contact erased later in the same tenant is known to the aggregator at once too.
    dave = Contact(owner.slug, "dave")
    await erase(client, owner, dave.id)
    await fold(pool, dave.events(), dave.updates())
    for needle in dave.secrets:
        assert await found_in(pool, needle) == [], needle


async def test_the_route_checks_scope_tenant_and_id(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: Any
) -> None:
    owner = await tenants.create()
    reader = await create_key(engine, owner.slug, ["metrics:read", "conversations:read"])
    refused = await client.delete("/v1/contacts/c1", headers=bearer(reader))
    assert refused.status_code == 403
    assert (await client.delete("/v1/contacts/c1")).status_code == 401
    for bad, reason in (("x" * 201, "1-200 characters"), ("", "1-200 characters")):
        answer = await client.delete(f"/v1/contacts/{bad}", headers=bearer(owner.api_key))
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["details"][0]["field"] == "contact_id"
        assert reason in answer.json()["error"]["details"][0]["reason"]
    # Any id the archive can hold can be erased: '/' and line breaks included.
    for path, contact in (("crm/42", "crm/42"), ("crm%2F43", "crm/43"), ("line%0Abreak", "line\nbreak")):
        answer = await client.delete(f"/v1/contacts/{path}", headers=bearer(owner.api_key))
        assert answer.status_code == 200, answer.text
        assert answer.json()["contact_id"] == contact
