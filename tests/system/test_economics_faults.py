"""Billing exactly once: Stripe subscription webhooks, signed by Stripe's own library, each delivered
twice in shuffled order (a third of the second deliveries after the kill) while the aggregator is
SIGKILLed mid-stream and started again. Afterwards `mrr_movements` holds one row per distinct
event and the economics summary's MRR figures equal a replay of the billing history done here,
independently of the fold (docs/economics.md, "Movements").

The stream is done when the group's stored offsets cover every message the ingest acknowledged
(each 202 is one message on a topic of this test's own), so a redelivery folded late cannot slip
past the checks.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import EmbeddedBroker, free_port
from services.core.kafka import ensure_topics
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret
from tests.conftest import Services, Stack
from tests.factories import TenantFactory
from tests.system.chaos import Pipeline, folded, until

SECRET = "whsec_economics-faults-0123456789"
CUSTOMERS = 36
HISTORY = datetime(2026, 1, 5, 9, tzinfo=UTC)
WINDOW = {"from": "2026-03-01", "to": "2026-05-31"}
WINDOW_START = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW_END = datetime(2026, 6, 1, tzinfo=UTC)  # just after the window's last day
# (price id, unit amount in cents, interval): monthly MRR 100, 250, 49, 200, 99.
PLANS = [
    ("price_basic", 10000, "month"),
    ("price_pro", 25000, "month"),
    ("price_seat", 4900, "month"),
    ("price_annual", 240000, "year"),
    ("price_annual_small", 118800, "year"),
]
MOVEMENTS = ("new_mrr", "reactivation_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr")


def monthly(plan: tuple[str, int, str], quantity: int) -> float:
    _, cents, interval = plan
    return cents * quantity / 100 / (12 if interval == "year" else 1)


def stripe_event(
    eid: str, kind: str, at: datetime, customer: str, sub: str, plan: tuple[str, int, str], quantity: int
) -> dict[str, Any]:
    price_id, unit_amount, interval = plan
    price = {"id": price_id, "object": "price", "currency": "usd", "unit_amount": unit_amount,
             "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}  # fmt: skip
    subscription = {
        "id": sub, "object": "subscription", "customer": customer, "currency": "usd",
        "status": "canceled" if kind == "deleted" else "active", "metadata": {},
        "items": {"object": "list", "data": [{"id": f"si_{eid}", "price": price, "quantity": quantity}]},
    }  # fmt: skip
    return {"id": eid, "object": "event", "type": f"customer.subscription.{kind}",
            "created": int(at.timestamp()), "livemode": False, "data": {"object": subscription}}  # fmt: skip


Timeline = list[tuple[datetime, str, str, float]]


def history(seed: int) -> tuple[list[dict[str, Any]], Timeline]:
    """The Stripe events, and (time, customer, subscription, its MRR after the event) for the replay.
    A customer's subscription is started, changed 0-3 times, maybe cancelled; some customers take a
    second one later (a reactivation if the first was cancelled by then, else an expansion)."""
    rnd, tag = random.Random(seed), secrets.token_hex(3)
    events: list[dict[str, Any]] = []
    timeline: Timeline = []
    for c in range(CUSTOMERS):
        customer = f"cus_{tag}_{c}"
        at = HISTORY + timedelta(days=rnd.randrange(0, 100), minutes=rnd.randrange(600))
        for round_ in range(1 + (rnd.random() < 0.3)):
            sub, plan, quantity = f"sub_{tag}_{c}_{round_}", rnd.choice(PLANS), rnd.randint(1, 3)
            kinds = ["created"] + ["updated"] * rnd.randrange(4) + ["deleted"] * (rnd.random() < 0.4)
            for kind in kinds:
                if kind == "updated":
                    plan, quantity = rnd.choice(PLANS), rnd.randint(1, 3)
                eid = f"evt_{tag}_{len(events):04d}"
                events.append(stripe_event(eid, kind, at, customer, sub, plan, quantity))
                timeline.append((at, customer, sub, 0.0 if kind == "deleted" else monthly(plan, quantity)))
                at += timedelta(days=rnd.randrange(5, 40), minutes=rnd.randrange(600))
    return events, timeline


def replay(timeline: Timeline) -> dict[str, float]:
    """MRR at the window's start and end and each movement's sum inside the window; a customer's MRR
    is the sum of its subscriptions' latest MRR."""
    out = dict.fromkeys(("mrr_start", "mrr_end", *MOVEMENTS), 0.0)
    subs: dict[str, dict[str, float]] = defaultdict(dict)
    paid: set[str] = set()
    for at, customer, sub, mrr in sorted(timeline):
        before = sum(subs[customer].values())
        subs[customer][sub] = mrr
        after = sum(subs[customer].values())
        if at < WINDOW_START:
            out["mrr_start"] += after - before
        if at >= WINDOW_END:
            continue
        out["mrr_end"] += after - before
        if before == 0 and after > 0:
            kind = "reactivation_mrr" if customer in paid else "new_mrr"
            paid.add(customer)
        elif after == 0 and before > 0:
            kind = "churned_mrr"
        elif after != before:
            kind = "expansion_mrr" if after > before else "contraction_mrr"
        else:
            continue
        if at >= WINDOW_START:
            out[kind] += abs(after - before)
    return out


async def post_stripe(client: httpx.AsyncClient, slug: str, event: dict[str, Any]) -> None:
    payload = orjson.dumps(event).decode()
    header = stripe.WebhookSignature.generate_signature_header(
        payload, SECRET, timestamp=int(datetime.now(UTC).timestamp())
    )
    headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
    for _ in range(100):  # a webhook sender retries a 5xx (the broker is never away here)
        r = await client.post(f"/webhooks/stripe/{slug}", content=payload, headers=headers)
        if r.status_code == 202:
            return
        assert r.status_code >= 500, r.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{event['id']} was never accepted")


async def send(url: str, slug: str, events: list[dict[str, Any]], per_s: float | None = None) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        for event in events:
            await post_stripe(client, slug, event)
            if per_s is not None:
                await asyncio.sleep(1 / per_s)


async def offsets_stored(engine: AsyncEngine, group: str) -> int:
    async with engine.connect() as conn:
        n = await conn.scalar(
            text("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE consumer_group = :g"),
            {"g": group},
        )
    return int(n or 0)


async def movement_rows(engine: AsyncEngine, tenant: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT count(*), count(DISTINCT event_id) FROM mrr_movements WHERE tenant = :t"),
                {"t": tenant},
            )
        ).one()
    return int(row[0]), int(row[1])


async def test_billing_is_folded_exactly_once_through_redeliveries_and_a_killed_aggregator(
    stack: Stack, services: Services, engine: AsyncEngine, tenants: TenantFactory, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log")
    broker.start()
    topic = f"economics-{secrets.token_hex(4)}"
    group = f"{topic}-group"
    settings = stack.settings(kafka_bootstrap=broker.bootstrap, events_topic=topic, topic_partitions=4)
    await ensure_topics(settings)
    env = {
        **stack.env,
        "SALESLOOP_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SALESLOOP_EVENTS_TOPIC": topic,
        "SALESLOOP_CONSUMER_GROUP": group,
        "SALESLOOP_TOPIC_PARTITIONS": "4",
        "SALESLOOP_CONSUMER_SESSION_TIMEOUT_MS": "2000",
        "SALESLOOP_BATCH_WAIT_MS": "20",
    }
    t = await tenants.create()
    await set_secret(engine, DEV_SECRET_KEY, t.slug, "stripe", SECRET)
    events, timeline = history(seed=18)
    rnd = random.Random(19)
    again = rnd.sample(events, len(events))
    first = events + again[: 2 * len(events) // 3]  # each once, two thirds of them a second time
    rnd.shuffle(first)
    pipe = Pipeline(env, tmp_path, broker)
    pipe.ingest.start()
    aggregator = pipe.aggregator()
    try:
        sending = asyncio.create_task(send(pipe.ingest_url, t.slug, first, per_s=40.0))
        await until(lambda: _folded_at_least(engine, t.slug, len(events) // 4), 30, "a quarter folded")
        aggregator.kill()  # SIGKILL while the stream goes on
        aggregator.start()
        await asyncio.wait_for(sending, 60)
        # The rest of the second deliveries, after the kill.
        await send(pipe.ingest_url, t.slug, again[2 * len(events) // 3 :])
        await until(lambda: _offsets_reached(engine, group, 2 * len(events)), 60, "every delivery consumed")
    finally:
        pipe.stop()
        broker.stop()

    assert await folded(engine, [t.slug]) == len(events)
    assert await movement_rows(engine, t.slug) == (len(events), len(events))
    async with httpx.AsyncClient(base_url=services.api_url, timeout=30) as api:
        r = await api.get(
            "/v1/economics/summary", params=WINDOW, headers={"Authorization": f"Bearer {t.api_key}"}
        )
    assert r.status_code == 200, r.text
    overall = r.json()["overall"]
    want = replay(timeline)
    assert {k: overall[k] for k in want} == pytest.approx(want, abs=1e-6)
    # The history exercises every kind of movement in the window.
    assert all(want[k] > 0 for k in MOVEMENTS), want


async def _folded_at_least(engine: AsyncEngine, tenant: str, n: int) -> bool:
    return (await folded(engine, [tenant]) or 0) >= n


async def _offsets_reached(engine: AsyncEngine, group: str, n: int) -> bool:
    return await offsets_stored(engine, group) >= n
