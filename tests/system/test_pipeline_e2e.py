"""Pipeline and forecast end to end (SPEC 5.8): a small organisation's deals told through the real
ingest by a customer's own system (canonical deal events), HubSpot (signed notifications, one property
change each, in shuffled order) and Salesforce (Outbound Message envelopes, a snapshot of the
Opportunity each time it changed), folded by the real aggregator, read through the real api.

Every field of every answer (stages of the tenant, of each rep and team; velocity per rep and team;
the forecast of four periods, with historical probabilities and then with the tenant's; slipped and
stale deals) and every row of the deals' history must equal what tests/system/pipeline_reference.py
works out from the stories alone (tests/system/pipeline_story.py makes them), when every webhook is
delivered twice and the aggregator is SIGKILLed mid-stream, and whatever order HubSpot's
notifications arrive in.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.kafka import ensure_topics
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.ingest.test_webhooks import Secrets, sign
from tests.system import pipeline_reference as ref
from tests.system.chaos import Pipeline, until
from tests.system.pipeline_reference import DAY
from tests.system.pipeline_story import (
    HUBSPOT_STAGES,
    REPS,
    Story,
    canonical,
    hubspot,
    organisation,
    salesforce,
)

ZONE = "America/New_York"
PARTITIONS = 4
EVERY_SOURCE = {"api": 18, "hubspot": 12, "salesforce": 3}
# The tenant's stages: HubSpot's in order, one left to its history; Salesforce's follow as first seen.
CONFIGURED: list[tuple[str, float | None]] = [
    (HUBSPOT_STAGES[0], 0.1), (HUBSPOT_STAGES[1], 0.25), (HUBSPOT_STAGES[2], None),
    (HUBSPOT_STAGES[3], 0.6), (HUBSPOT_STAGES[4], 0.8),
]  # fmt: skip


@dataclass
class Stream:
    """The processes, on a topic and consumer group of their own."""

    pipe: Pipeline
    topic: str
    group: str
    bootstrap: str


@pytest.fixture(scope="module")
async def stream(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stream]:
    topic = f"pipeline-e2e-{secrets.token_hex(4)}"
    await ensure_topics(stack.settings(events_topic=topic, topic_partitions=PARTITIONS))
    env = {
        **stack.env,
        "SALESLOOP_EVENTS_TOPIC": topic,
        "SALESLOOP_CONSUMER_GROUP": f"{topic}-group",
        "SALESLOOP_TOPIC_PARTITIONS": str(PARTITIONS),
        "SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS": "2000",
        "SALESLOOP_BATCH_WAIT_MS": "50",
    }
    pipe = Pipeline(env, tmp_path_factory.mktemp("pipeline-e2e"), stack.broker)
    try:
        pipe.ingest.start(wait=False)
        pipe.api.start(wait=False)
        pipe.aggregator()
        pipe.ingest.wait_healthy()
        pipe.api.wait_healthy()
        yield Stream(pipe, topic, f"{topic}-group", stack.broker.bootstrap)
    finally:
        pipe.stop()


# --- the organisation and its deliveries ---------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """One request a source sends: canonical events, HubSpot notifications or a Salesforce envelope."""

    source: str
    body: Any
    attempt: int = 0


@dataclass
class Org:
    t: TenantCtx
    keys: Secrets
    story: Story
    t0: datetime  # the first midnight of last month, in the tenant's zone


def last_month(now: datetime) -> datetime:
    """The first midnight of the month before `now`'s, in the tenant's zone."""
    first = (now.astimezone(ZoneInfo(ZONE)).date().replace(day=1) - DAY).replace(day=1)
    return datetime(first.year, first.month, 1, tzinfo=ZoneInfo(ZONE))


async def organisation_tenant(
    s: Stream, tenants: TenantFactory, engine: AsyncEngine, story: Story, t0: datetime
) -> Org:
    """A tenant with its HubSpot and Salesforce secrets and its reps (through the api)."""
    t, keys = await tenants.create(timezone=ZONE), Secrets()
    for source in ("hubspot", "salesforce"):
        await set_secret(engine, DEV_SECRET_KEY, t.slug, source, getattr(keys, source))
    async with httpx.AsyncClient(base_url=s.pipe.api_url, timeout=30) as api:
        for r in REPS:
            aliases = {"hubspot_owner_id": r.hubspot_owner_id, "salesforce_user_id": r.salesforce_user_id}
            body: dict[str, Any] = {"name": r.rep_id.upper(), "team": r.team, "aliases": aliases}
            if r.quota_monthly is not None:
                body["quota_monthly"] = str(r.quota_monthly)
            put = await api.put(f"/v1/reps/{r.rep_id}", json=body, headers=_auth(t.api_key))
            assert put.status_code in (200, 201), put.text
    return Org(t, keys, story, t0)


def posts(story: Story, rnd: random.Random) -> list[Post]:
    """The sources' requests in a shuffled order: events and notifications in random batches."""
    out: list[Post] = []
    for source, items in (("api", canonical(story)), ("hubspot", hubspot(story))):
        rnd.shuffle(items)
        while items:
            size = rnd.randint(1, 8)
            out.append(Post(source, items[:size]))
            items = items[size:]
    out += [Post("salesforce", envelope) for envelope in salesforce(story)]
    rnd.shuffle(out)
    return out


async def send(client: httpx.AsyncClient, org: Org, p: Post) -> None:
    t = org.t
    if p.source == "api":
        r = await client.post(f"/v1/events/{t.slug}", json={"events": p.body}, headers=_auth(t.ingest_key))
    else:
        # A vendor signs each attempt afresh; HubSpot counts its attempts in the body.
        body = (
            orjson.dumps([{**n, "attemptNumber": p.attempt} for n in p.body])
            if p.source == "hubspot"
            else p.body
        )
        d = sign(p.source, body, t.slug, org.keys, base=str(client.base_url))
        r = await client.post(d.path, content=d.body, headers=d.headers)
    assert r.status_code == (200 if p.source == "salesforce" else 202), (p.source, r.text)


async def deliver(s: Stream, org: Org, requests: list[Post], per_second: float | None = None) -> None:
    """Send the requests from 4 concurrent clients, at `per_second` requests a second at most."""
    queue = list(reversed(requests))
    started = time.monotonic()

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            n = len(requests) - len(queue)
            p = queue.pop()
            if per_second is not None:
                await asyncio.sleep(max(0.0, started + n / per_second - time.monotonic()))
            await send(client, org, p)

    async with httpx.AsyncClient(base_url=s.pipe.ingest_url, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(4)))


async def all_folded(s: Stream, engine: AsyncEngine) -> None:
    """Wait until every message on the topic is behind the offsets the aggregator stored in Postgres."""
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(s.topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    produced = int(sum(ends.values()))

    async def behind() -> bool:
        async with engine.connect() as conn:
            stored = await conn.scalar(
                text("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = :g"),
                {"g": s.group},
            )
        return int(stored or 0) >= produced

    await until(behind, 60, f"the {produced} messages of {s.topic} folded")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- what the reads must answer -----------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    label: str
    first: date
    last: date
    months: int


def month(day: date) -> Period:
    first = day.replace(day=1)
    last = (first + 31 * DAY).replace(day=1) - DAY
    return Period(f"{first.year:04d}-{first.month:02d}", first, last, 1)


def quarter(day: date) -> Period:
    q = (day.month - 1) // 3
    first = date(day.year, 3 * q + 1, 1)
    return Period(f"{day.year:04d}-Q{q + 1}", first, month(date(day.year, 3 * q + 3, 1)).last, 3)


class Expected:
    """Every read checked, with its answer worked out from the stories alone."""

    def __init__(self, org: Org, today: date, configured: list[tuple[str, float | None]]) -> None:
        self.zone, self.today, self.configured = ZoneInfo(ZONE), today, configured
        self.hs = [ref.history(d) for d in org.story.deals]
        self.as_of = org.story.calls[-1].at
        self.order = ref.stage_order(self.hs, configured)
        self.year = ref.bounds(today - 365 * DAY, today - DAY, self.zone)
        self.activity: dict[str, datetime] = {}
        for c in org.story.calls:
            self.activity[c.contact_id] = max(c.at, self.activity.get(c.contact_id, c.at))
        self.t0 = org.t0.date()

    def head(self, first: date, last: date) -> dict[str, Any]:
        return {"from": str(first), "to": str(last), "as_of": self.as_of.isoformat().replace("+00:00", "Z")}

    def reads(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(path, query, body) of each read."""
        window, early = (self.t0 - 45 * DAY, self.today - DAY), (self.t0, self.t0 + 20 * DAY)
        now = month(self.t0 + 31 * DAY)
        out = [self.stages(*early), self.stages(*window)]
        out += [self.stages(*window, rep=r.rep_id) for r in REPS]
        out += [self.stages(*window, team=team) for team in ("east", "west")]
        out += [self.velocity(*window, "rep"), self.velocity(*window, "team"), self.velocity(*early, "rep")]
        periods = [month(self.t0), now, month(now.last + DAY), quarter(now.first)]
        out += [self.forecast(p) for p in periods]
        out += [self.slipped(month(self.t0)), self.slipped(now), self.stale(14), self.stale(30)]
        return out

    def stages(self, first: date, last: date, rep: str | None = None, team: str | None = None) -> Any:
        reps = {rep} if rep else {r.rep_id for r in REPS if r.team == team} if team else None
        body = {**self.head(first, last), "configured": bool(self.configured), "rep_id": rep, "team": team}
        body["stages"] = ref.stages(self.hs, self.order, *ref.bounds(first, last, self.zone), reps)
        query = {
            "from": str(first),
            "to": str(last),
            **({"rep_id": rep} if rep else {}),
            **({"team": team} if team else {}),
        }
        return "stages", query, body

    def velocity(self, first: date, last: date, group: str) -> Any:
        team_of = {r.rep_id: r.team for r in REPS}
        key: Callable[[str | None], str | None] = (
            (lambda r: r) if group == "rep" else (lambda r: team_of.get(r or ""))
        )
        keys = {r.rep_id if group == "rep" else r.team for r in REPS}
        groups, total = ref.velocity(self.hs, *ref.bounds(first, last, self.zone), key, keys)
        body = {**self.head(first, last), "group": group, "groups": groups, "total": total}
        return "velocity", {"from": str(first), "to": str(last), "group": group}, body

    def forecast(self, p: Period) -> Any:
        chances = ref.probabilities(self.hs, self.order, *self.year)
        numbers = ref.forecast(self.hs, REPS, chances, p.first, p.last, p.months, self.zone)
        return "forecast", {"period": p.label}, {"period": p.label, **self.head(p.first, p.last), **numbers}

    def slipped(self, p: Period) -> Any:
        deals = ref.slipped(self.hs, p.first, p.last, self.zone, self.as_of)
        body = {"status": "slipped", "period": p.label, "stale_days": None, **self.head(p.first, p.last)}
        return "deals", {"status": "slipped", "period": p.label}, {**body, **self.listed(deals)}

    def stale(self, days: int) -> Any:
        deals = ref.stale(self.hs, *self.year, self.as_of, days, self.activity)
        body = {
            "status": "stale",
            "period": None,
            "stale_days": days,
            **self.head(self.today - 365 * DAY, self.today - DAY),
        }
        return "deals", {"status": "stale", "stale_days": days}, {**body, **self.listed(deals)}

    @staticmethod
    def listed(deals: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "count": len(deals),
            "amount": float(sum(d["amount"] or 0 for d in deals)),
            "deals": deals[:100],
        }


def mismatches(got: Any, want: Any, where: str = "") -> list[str]:
    """Where `got` (JSON) differs from `want`; floats within a relative 1e-9."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: {got!r} is no object"]
        if got.keys() != want.keys():
            missing, extra = (
                sorted(map(str, want.keys() - got.keys())),
                sorted(map(str, got.keys() - want.keys())),
            )
            return [f"{where}: missing {missing}, unexpected {extra}"]
        return [m for k in want for m in mismatches(got[k], want[k], f"{where}.{k}")]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: {got!r} != {want!r}"]
        return [
            m
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for m in mismatches(g, w, f"{where}[{i}]")
        ]
    if isinstance(want, float):
        ok = type(got) in (int, float) and got == pytest.approx(want, rel=1e-9, abs=1e-9)
    else:
        ok = got == want and type(got) is type(want)
    return [] if ok else [f"{where}: {got!r} != {want!r}"]


async def check_reads(s: Stream, org: Org, configured: list[tuple[str, float | None]]) -> None:
    zone = ZoneInfo(ZONE)
    async with httpx.AsyncClient(base_url=s.pipe.api_url, timeout=30) as api:
        for _ in range(2):  # again if the day turned during the reads
            today, problems = datetime.now(zone).date(), []
            for path, query, body in Expected(org, today, configured).reads():
                r = await api.get(f"/v1/pipeline/{path}", params=query, headers=_auth(org.t.api_key))
                assert r.status_code == 200, (path, query, r.text)
                problems += [f"{path} {query}{m}" for m in mismatches(r.json(), body)]
            if datetime.now(zone).date() == today:
                break
    assert not problems, "\n".join(problems[:40])


# --- what is kept ---------------------------------------------------------------------------------

DEAL_COLUMNS = (
    "deal_id, rep_id, created_rep_id, contact_id, created_at, status, closed_at, stage, stage_entered_at, "
    "amount, close_date, forecast_category"
)
STAY_COLUMNS = "deal_id, entered_at, stage, left_at, next, rep_id, deal_created_at, reached_later, won_after"


async def check_history(engine: AsyncEngine, org: Org) -> None:
    """The deals' rows and stays as the stories make them, and every event counted once."""
    hs = [ref.history(d) for d in org.story.deals]
    async with engine.connect() as conn:

        async def rows(sql: str) -> list[dict[str, Any]]:
            return [dict(r) for r in (await conn.execute(text(sql), {"t": org.t.slug})).mappings()]

        deals = await rows(f"SELECT {DEAL_COLUMNS} FROM pipeline_deals WHERE tenant = :t ORDER BY deal_id")
        stays = await rows(
            f"SELECT {STAY_COLUMNS} FROM deal_stage_stays WHERE tenant = :t ORDER BY deal_id, entered_at"
        )
        counts = await rows(
            "SELECT (SELECT events_folded FROM tenant_watermarks WHERE tenant = :t) AS folded, "
            "(SELECT count(*) FROM events WHERE tenant = :t) AS archived, "
            "(SELECT count(*) FROM failed_events WHERE tenant = :t) AS failed"
        )
    want_deals = {d["deal_id"]: d for d in map(ref.deal_row, hs)}
    want_stays = {(s["deal_id"], s["entered_at"]): s for h in hs for s in ref.stay_rows(h)}
    problems = mismatches({d["deal_id"]: d for d in deals}, want_deals, "pipeline_deals")
    problems += mismatches({(s["deal_id"], s["entered_at"]): s for s in stays}, want_stays, "stays")
    assert not problems, "\n".join(problems[:40])
    assert counts == [{"folded": counts[0]["archived"], "archived": counts[0]["archived"], "failed": 0}]


# --- the tests ------------------------------------------------------------------------------------


async def folded_at_least(engine: AsyncEngine, tenant: str, n: int) -> bool:
    async with engine.connect() as conn:
        got = await conn.scalar(
            text("SELECT events_folded FROM tenant_watermarks WHERE tenant = :t"), {"t": tenant}
        )
    return int(got or 0) >= n


def assert_varied(want: Expected) -> None:
    """The story has what the reads are about (its seed was chosen so, whatever the month)."""
    reasons = {
        r for path, _, body in want.reads() if path == "deals" for d in body["deals"] for r in d["reasons"]
    }
    assert reasons == {"close_date_moved", "lost", "days_in_stage_over_p90", "no_activity"}
    assert {h.status for h in want.hs} == {"open", "won", "lost"}
    assert any(len({s.rep for s in h.stays}) > 1 for h in want.hs)  # a deal that changed hands
    assert any(not h.owners for h in want.hs)  # a deal of nobody's
    assert any(not h.stays and h.status == "open" for h in want.hs)  # an open deal in no stage yet
    assert reclosed(want.hs)


def reclosed(hs: list[ref.History]) -> bool:
    """Whether a deal was closed, reopened and closed again."""
    return any(sum(s.next in ("won", "lost") for s in h.stays) > 1 for h in hs)


async def test_every_source_delivered_twice_through_a_killed_aggregator(
    stream: Stream, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    t0 = last_month(now)
    org = await organisation_tenant(stream, tenants, engine, organisation(12, t0, now, EVERY_SOURCE), t0)
    assert_varied(Expected(org, now.astimezone(ZoneInfo(ZONE)).date(), []))
    once = posts(org.story, random.Random(4))
    twice = once + [replace(p, attempt=1) for p in once]  # every request again, HubSpot's as a retry
    random.Random(5).shuffle(twice)
    # A third of the stream, the aggregator SIGKILLed once it folded some of it, the rest meanwhile.
    first = asyncio.create_task(deliver(stream, org, twice[: len(twice) // 3], per_second=30))
    await until(lambda: folded_at_least(engine, org.t.slug, 30), 30, "the first events folded")
    aggregator = stream.pipe.aggregators[-1]
    aggregator.kill()
    await asyncio.gather(
        first, asyncio.to_thread(aggregator.start), deliver(stream, org, twice[len(twice) // 3 :])
    )
    await all_folded(stream, engine)

    await check_history(engine, org)
    await check_reads(stream, org, [])
    async with httpx.AsyncClient(base_url=stream.pipe.api_url, timeout=30) as api:
        stages = [{"name": n, "probability": p} for n, p in CONFIGURED]
        r = await api.put("/v1/pipeline/stages", json={"stages": stages}, headers=_auth(org.t.api_key))
        assert r.status_code == 200, r.text
        assert r.json() == {"stages": stages}
    await check_reads(stream, org, CONFIGURED)


async def test_hubspot_notifications_in_any_order_give_the_same_pipeline(
    stream: Stream, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    t0 = last_month(now)
    story = organisation(19, t0, now, {"hubspot": 16})
    assert reclosed([ref.history(d) for d in story.deals])
    orgs = [await organisation_tenant(stream, tenants, engine, story, t0) for _ in range(3)]
    orders = [posts(story, random.Random(100 + i)) for i in range(len(orgs))]
    assert len({orjson.dumps([p.body for p in o]) for o in orders}) == len(orders)
    await asyncio.gather(*(deliver(stream, org, o) for org, o in zip(orgs, orders, strict=True)))
    await all_folded(stream, engine)
    for org in orgs:
        await check_history(engine, org)
        await check_reads(stream, org, [])
