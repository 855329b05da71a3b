"""Event streams for the aggregator tests, and an independent, deliberately naive rollup computation.

`expected_rollups` shares no code with services.aggregator: it reads the raw event dicts and applies
SPEC 5.1 / 5.5 literally, so the tests compare two implementations, not one with itself.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.events import SCHEMA_HEADER, BuyerEvent, Source, kafka_key, to_message
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS

CHANNELS = ["organic_search", "paid_search", "referral", "outbound", "events", "partner"]
TYPES = [
    ("call.completed", 30),
    ("email.sent", 12),
    ("email.opened", 4),
    ("email.clicked", 2),
    ("email.replied", 4),
    ("email.bounced", 1),
    ("meeting.booked", 5),
    ("meeting.held", 4),
    ("meeting.no_show", 1),
    ("lead.created", 6),
    ("lead.qualified", 4),
    ("deal.created", 4),
    ("deal.stage_changed", 3),
    ("deal.won", 4),
    ("deal.lost", 3),
    ("training.certification", 2),
]
SECONDS_COLUMNS = ("talk_time_s", "rep_talk_s", "buyer_talk_s")


@dataclass
class Tenant:
    slug: str
    timezone: str
    reps: dict[str, str] = field(default_factory=dict)  # rep_id -> timezone (registered reps)

    def zone(self, rep_id: str | None) -> str:
        return self.reps.get(rep_id or "", self.timezone)


def make_events(
    n: int, tenant: str, rep_ids: Sequence[str | None], seed: int, start: datetime | None = None
) -> list[dict[str, Any]]:
    """`n` distinct canonical events over ~20 days, written with assorted UTC offsets, in random order."""
    rnd = random.Random(seed)
    kinds, weights = zip(*TYPES, strict=True)
    start = start or datetime(2026, 10, 20, tzinfo=UTC)
    out = []
    for i in range(n):
        kind = rnd.choices(kinds, weights)[0]
        at = start + timedelta(seconds=rnd.randrange(20 * 86400))
        offset = rnd.choice([0, 0, -5, 2, 9, 5.5])
        local = (at + timedelta(hours=offset)).replace(tzinfo=None).isoformat()
        sign = "+" if offset >= 0 else "-"
        hours, minutes = int(abs(offset)), int(abs(offset) * 60) % 60
        stamp = local + ("Z" if offset == 0 else f"{sign}{hours:02d}:{minutes:02d}")
        e: dict[str, Any] = {
            "event_id": f"{tenant}-{seed}-{i}",
            "type": kind,
            "occurred_at": stamp,
            "rep_id": rnd.choice(list(rep_ids)),
            "contact_id": f"c{rnd.randrange(300)}",
        }
        if kind == "call.completed":
            e["direction"] = rnd.choice(["outbound", "outbound", "inbound"])
            e["outcome"] = rnd.choice(["connected", "connected", "no_answer", "voicemail", "busy"])
            e["duration_s"] = rnd.choice([rnd.randrange(0, 1800), round(rnd.uniform(0, 900), 3)])
            if rnd.random() < 0.6:
                e["rep_talk_s"] = round(rnd.uniform(0, 600), 1)
                e["buyer_talk_s"] = rnd.randrange(0, 600)
        elif kind == "lead.qualified":
            e["stage"] = rnd.choice(["mql", "sql"])
        elif kind == "deal.won":
            if rnd.random() < 0.9:
                e["amount"] = f"{rnd.randrange(0, 90000)}.{rnd.randrange(10000):04d}"
        elif kind == "deal.created":
            e["amount"] = f"{rnd.randrange(1000, 90000)}.{rnd.randrange(100):02d}"
        elif kind == "deal.stage_changed":
            e["stage"] = rnd.choice(["discovery", "proposal", "negotiation"])
        elif kind == "training.certification":
            e["module"] = rnd.choice(["discovery", "demo", "pricing"])
            e["score"] = rnd.randrange(0, 101)
            e["passed"] = e["score"] >= 70
        if rnd.random() < 0.5:
            e["channel"] = rnd.choice(CHANNELS)
        out.append({k: v for k, v in e.items() if v is not None})
    rnd.shuffle(out)
    return out


def to_record(event: dict[str, Any], tenant: str) -> tuple[bytes, bytes]:
    """(key, value) exactly as ingest produces them."""
    model = BuyerEvent.model_validate(event)
    value = to_message(model, tenant, Source.API, datetime.now(UTC))
    return kafka_key(tenant, model.rep_id, model.contact_id), value


def with_redeliveries(
    records: list[tuple[bytes, bytes]], share: float, seed: int
) -> list[tuple[bytes, bytes]]:
    """The records plus copies of a `share` of them, in an order where copies also come first."""
    rnd = random.Random(seed)
    out = records + rnd.sample(records, int(len(records) * share))
    rnd.shuffle(out)
    return out


async def produce(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        hdrs = [SCHEMA_HEADER] if headers is None else headers
        futures = [await producer.send(topic, value, key=key, headers=hdrs) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def _day(stamp: str, tz: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(ZoneInfo(tz)).date()


def expected_rollups(
    events: Sequence[dict[str, Any]], tenant: Tenant
) -> tuple[dict[tuple[Any, ...], dict[str, Any]], dict[tuple[Any, ...], dict[str, Any]], int, datetime]:
    """(rep rows, channel rows, events folded, as_of) of the distinct events, computed the plain way."""
    reps: dict[tuple[Any, ...], dict[str, Any]] = {}
    channels: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in events:
        t = e["type"]
        if e.get("rep_id") is not None:
            key = (tenant.slug, e["rep_id"], _day(e["occurred_at"], tenant.zone(e["rep_id"])))
            r = reps.setdefault(key, dict.fromkeys(REP_COUNTERS, 0))
            r["events"] += 1
            simple = {
                "email.sent": "emails_sent",
                "email.opened": "emails_opened",
                "email.clicked": "emails_clicked",
                "email.replied": "email_replies",
                "email.bounced": "emails_bounced",
                "meeting.booked": "meetings_booked",
                "meeting.held": "meetings_held",
                "meeting.no_show": "meetings_no_show",
                "lead.created": "leads_created",
                "deal.created": "deals_created",
                "deal.stage_changed": "deal_stage_changes",
                "deal.lost": "deals_lost",
            }
            if t in simple:
                r[simple[t]] += 1
            if t == "call.completed":
                r["calls"] += 1
                if e.get("direction") == "outbound":
                    r["dials"] += 1
                    if e.get("outcome") == "connected":
                        r["connects"] += 1
                if e.get("outcome") == "connected":
                    r["talk_time_s"] += Decimal(str(e.get("duration_s", 0)))
                if "rep_talk_s" in e and "buyer_talk_s" in e:
                    r["talk_calls"] += 1
                    r["rep_talk_s"] += Decimal(str(e["rep_talk_s"]))
                    r["buyer_talk_s"] += Decimal(str(e["buyer_talk_s"]))
            if t == "lead.qualified":
                r["leads_mql" if e["stage"] == "mql" else "leads_sql"] += 1
            if t == "deal.won":
                r["deals_won"] += 1
                r["revenue_won"] += Decimal(e.get("amount", "0"))
            if t == "training.certification":
                r["certifications"] += 1
                r["certifications_passed"] += 1 if e["passed"] else 0
        if e.get("channel") is not None:
            key = (tenant.slug, e["channel"], _day(e["occurred_at"], tenant.timezone))
            c = channels.setdefault(key, dict.fromkeys(CHANNEL_COUNTERS, 0))
            c["events"] += 1
            c["leads"] += t == "lead.created"
            c["mqls"] += t == "lead.qualified" and e["stage"] == "mql"
            c["sqls"] += t == "lead.qualified" and e["stage"] == "sql"
            c["deals_created"] += t == "deal.created"
            if t == "deal.won":
                c["deals_won"] += 1
                c["revenue_won"] += Decimal(e.get("amount", "0"))
    as_of = max(datetime.fromisoformat(e["occurred_at"]) for e in events)
    return reps, channels, len(events), as_of


async def stored_rollups(
    engine: AsyncEngine, tenant: str
) -> tuple[
    dict[tuple[Any, ...], dict[str, Any]], dict[tuple[Any, ...], dict[str, Any]], int, datetime | None
]:
    async with engine.connect() as conn:
        rep_rows = (
            await conn.execute(text("SELECT * FROM rollup_rep_daily WHERE tenant = :t"), {"t": tenant})
        ).mappings()
        reps = {(r["tenant"], r["rep_id"], r["day"]): {c: r[c] for c in REP_COUNTERS} for r in rep_rows}
        ch_rows = (
            await conn.execute(text("SELECT * FROM rollup_channel_daily WHERE tenant = :t"), {"t": tenant})
        ).mappings()
        channels = {
            (r["tenant"], r["channel"], r["day"]): {c: r[c] for c in CHANNEL_COUNTERS} for r in ch_rows
        }
        mark = (
            await conn.execute(
                text("SELECT as_of, events_folded FROM tenant_watermarks WHERE tenant = :t"), {"t": tenant}
            )
        ).first()
    return reps, channels, (mark.events_folded if mark else 0), (mark.as_of if mark else None)


async def assert_rollups_match(engine: AsyncEngine, events: Sequence[dict[str, Any]], tenant: Tenant) -> None:
    want_reps, want_channels, want_n, want_as_of = expected_rollups(events, tenant)
    got_reps, got_channels, got_n, got_as_of = await stored_rollups(engine, tenant.slug)
    assert got_n == want_n
    assert got_as_of == want_as_of
    assert _diff(got_reps, want_reps) == {}
    assert _diff(got_channels, want_channels) == {}


def _diff(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> dict[Any, Any]:
    """Only the cells that differ, so a failure says which rollup, day and counter is off."""
    out: dict[Any, Any] = {}
    for key in got.keys() | want.keys():
        g, w = got.get(key), want.get(key)
        if g is None or w is None:
            out[key] = ("missing row", g, w)
            continue
        cells = {c: (g[c], w[c]) for c in w if g[c] != w[c]}
        if cells:
            out[key] = cells
    return out


async def folded(engine: AsyncEngine, tenants: Sequence[str]) -> int:
    async with engine.connect() as conn:
        n = (
            await conn.execute(
                text("SELECT coalesce(sum(events_folded), 0) FROM tenant_watermarks WHERE tenant = ANY(:t)"),
                {"t": list(tenants)},
            )
        ).scalar()
    return int(n or 0)


async def stored_offsets(engine: AsyncEngine, group: str) -> int:
    """The sum of the next offsets Postgres holds for a consumer group: the messages behind it."""
    async with engine.connect() as conn:
        n = await conn.scalar(
            text("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = :g"),
            {"g": group},
        )
    return int(n or 0)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, interval_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f}s waiting for {what}"
        await asyncio.sleep(interval_s)


async def wait_folded(engine: AsyncEngine, tenants: Sequence[str], expected: int, timeout_s: float) -> None:
    async def done() -> bool:
        n = await folded(engine, tenants)
        assert n <= expected, f"{n} events folded but only {expected} distinct were sent"
        return n == expected

    await wait_until(done, timeout_s, f"{expected} events folded")
