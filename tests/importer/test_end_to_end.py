"""`salesloop import` through the real processes: the sample exports into an empty tenant give the
metrics, channels and ramp an independent reading of the same files gives (tests/importer/reference.py);
a dry run, a second run, a foreign or malformed file send nothing; a fact received by webhook as well
as imported counts once."""

from __future__ import annotations

import asyncio
import secrets
import statistics
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Services, Stack
from tests.factories import TenantCtx, TenantFactory
from tests.importer import reference
from tests.importer.support import DANA_SF, EVE_SF, SAMPLES
from tests.ingest.test_webhooks import SF_ORG, Secrets, sign
from tests.support import events_folded, wait_folded
from tests.system.reference import Org, assert_metrics_equal, rep_metrics
from tests.system.test_vendors import salesloop, sf_envelope

HIRED = date(2026, 8, 1)
FROM, TO = date(2026, 9, 1), date(2026, 11, 30)
ORG = Org(reps={"r-dana": "UTC", "r-eve": "UTC"}, teams={"r-dana": "west", "r-eve": "west"},
          quotas={"r-dana": Decimal(20000)})  # fmt: skip
ALIASES = {"r-dana": DANA_SF, "r-eve": EVE_SF}
HUBSPOT = ("hubspot-contacts.csv", "hubspot-deals.csv")
SALESFORCE = (
    "sf-opportunity-history.csv",
    "sf-opportunity.csv",
    "sf-lead.csv",
    "sf-task.csv",
    "sf-event.csv",
)


def expected_events() -> list[dict[str, Any]]:
    by_name = {"Dana Whitfield": "r-dana", "Eve Marlow": "r-eve"}
    by_user = {user: rep for rep, user in ALIASES.items()}
    return reference.hubspot(by_name) + reference.salesforce(by_user) + reference.json_lines()


async def run_import(
    stack: Stack, t: TenantCtx, source: str, *files: str | Path, more: tuple[str, ...] = ()
) -> tuple[int, str]:
    paths = [str(f if isinstance(f, Path) else SAMPLES / f) for f in files]
    args = ("import", source, *paths, "--tenant", t.slug, "--rep-map", str(SAMPLES / "rep-map.csv"), *more)
    done = await asyncio.to_thread(salesloop, stack, *args)
    return done.returncode, " ".join(done.stderr.split())  # the summary, its table cells on one line


async def produced(stack: Stack) -> int:
    """How many messages the events topic holds: the sum of its partitions' end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap)
    await consumer.start()
    try:
        topic = stack.settings().events_topic
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


@pytest.fixture
async def api(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=services.api_url, timeout=30) as client:
        yield client


async def register_reps(api: httpx.AsyncClient, t: TenantCtx) -> None:
    for rep, user in ALIASES.items():
        body = {"name": rep, "team": "west", "timezone": "UTC", "hired_at": HIRED.isoformat(),
                "aliases": {"salesforce_user_id": user}}  # fmt: skip
        if rep in ORG.quotas:
            body["quota_monthly"] = str(ORG.quotas[rep])
        r = await api.put(f"/v1/reps/{rep}", json=body, headers={"Authorization": f"Bearer {t.api_key}"})
        assert r.status_code in (200, 201), r.text


async def answers(api: httpx.AsyncClient, t: TenantCtx) -> dict[str, Any]:
    auth, window = {"Authorization": f"Bearer {t.api_key}"}, {"from": FROM.isoformat(), "to": TO.isoformat()}
    out = {}
    for rep in ORG.reps:
        r = await api.get(f"/v1/reps/{rep}/metrics", params=window, headers=auth)
        assert r.status_code == 200, r.text
        out[rep] = r.json()["metrics"]
    r = await api.get("/v1/demand/channels", params=window, headers=auth)
    assert r.status_code == 200, r.text
    out["channels"] = r.json()["channels"]
    r = await api.get(
        "/v1/training/ramp", params={"cohort": "quarter", "metric": "revenue_won"}, headers=auth
    )
    assert r.status_code == 200, r.text
    out["ramp"] = r.json()["cohorts"]
    return out


def assert_channels(got: dict[str, Any], want: dict[str, dict[str, Any]]) -> None:
    assert set(got) == set(want), (sorted(got), sorted(want))
    for channel, values in want.items():
        for name in ("leads", "mqls", "sqls", "deals_created", "deals_won"):
            assert got[channel][name] == values.get(name, 0), (channel, name, got[channel])
        assert got[channel]["revenue_won"] == pytest.approx(values.get("revenue_won", 0.0)), channel
        assert got[channel]["speed_to_lead_median_s"] == values.get("speed_to_lead_median_s"), channel


def assert_ramp(got: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    (cohort,) = got
    wins = {
        rep: [e for e in events if e["type"] == "deal.won" and e.get("rep_id") == rep] for rep in ORG.reps
    }
    first = {
        rep: min((datetime.fromisoformat(e["occurred_at"]).date() for e in w), default=None)
        for rep, w in wins.items()
    }
    assert cohort["days_to_first_win"] == {rep: (d - HIRED).days if d else None for rep, d in first.items()}
    months = {m["month"]: m for m in cohort["months"]}
    for month, (start, end) in {
        1: (date(2026, 9, 1), date(2026, 10, 1)),
        2: (date(2026, 10, 1), date(2026, 11, 1)),
    }.items():
        revenue = [
            sum(
                float(e["amount"])
                for e in w
                if start <= datetime.fromisoformat(e["occurred_at"]).date() < end
            )
            for w in wins.values()
        ]
        assert months[month]["median"] == pytest.approx(statistics.median(revenue)), month


async def test_exports_into_an_empty_tenant_give_what_the_files_say_once_however_often_imported(
    services: Services, stack: Stack, engine: AsyncEngine, tenants: TenantFactory, api: httpx.AsyncClient
) -> None:
    t = await tenants.create(currency="USD", timezone="UTC")
    await register_reps(api, t)
    events = expected_events()

    before = await produced(stack)
    code, said = await run_import(stack, t, "hubspot", *HUBSPOT, more=("--dry-run",))
    assert code == 0, said
    assert "Dry run: nothing was sent; 26 events would be." in said
    assert await produced(stack) == before

    for source, files in (("hubspot", HUBSPOT), ("salesforce", SALESFORCE), ("jsonl", ("events.jsonl",))):
        code, said = await run_import(stack, t, source, *files)
        assert code == 0, said
    await wait_folded(engine, t.slug, len(events))
    first = await answers(api, t)
    for rep in ORG.reps:
        assert_metrics_equal(first[rep], rep_metrics(events, {rep}, ORG, FROM, TO))
    assert_channels(first["channels"], reference.channels(events, FROM, TO))
    assert_ramp(first["ramp"], events)

    # Again, all of it: nothing is sent, nothing changes.
    sent = await produced(stack)
    for source, files in (("hubspot", HUBSPOT), ("salesforce", SALESFORCE), ("jsonl", ("events.jsonl",))):
        code, said = await run_import(stack, t, source, *files)
        assert code == 0, said
        assert "Sent 0 events" in said, said
    assert await produced(stack) == sent
    assert await answers(api, t) == first

    # The same won opportunity and call by Outbound Message: the adapter's ids are the import's.
    await receive_by_webhook(services, stack, t)
    await flush(services, t, ("-", "00Q5e00000MnB2xEAF"))
    await wait_folded(engine, t.slug, len(events) + 2)
    assert await answers(api, t) == first


async def receive_by_webhook(services: Services, stack: Stack, t: TenantCtx) -> None:
    keys = Secrets(salesforce=f"{SF_ORG}:{secrets.token_urlsafe(32)}")
    done = await asyncio.to_thread(
        salesloop, stack, "tenants", "set-secret", t.slug, "salesforce", keys.salesforce
    )
    assert done.returncode == 0, done.stderr
    records = {name: reference.sample_rows(name)[0] for name in ("sf-opportunity.csv", "sf-task.csv")}
    body = sf_envelope(
        ("04l5e00000AbCdEAAA", "Opportunity", {k: v for k, v in records["sf-opportunity.csv"].items() if v}),
        ("04l5e00000AbCdFAAA", "Task", {k: v for k, v in records["sf-task.csv"].items() if v}),
    )
    d = sign("salesforce", body, t.slug, keys, base=services.ingest_url)
    async with httpx.AsyncClient(base_url=services.ingest_url) as ingest:
        r = await ingest.post(d.path, content=d.body, headers=d.headers)
    assert r.status_code == 200, r.text


async def flush(services: Services, t: TenantCtx, keys: tuple[str, ...]) -> None:
    """One canonical event on each Kafka key the webhook used (`-`: no rep or contact); once they are
    folded, so is what the webhook sent before them on the same partition."""
    events = [
        {"event_id": f"flush-{key}", "type": "email.opened", "occurred_at": "2026-12-01T10:00:00Z",
         **({"contact_id": key} if key != "-" else {})}
        for key in keys
    ]  # fmt: skip
    async with httpx.AsyncClient(base_url=services.ingest_url) as ingest:
        r = await ingest.post(
            f"/v1/events/{t.slug}",
            json={"events": events},
            headers={"Authorization": f"Bearer {t.ingest_key}"},
        )
    assert r.status_code == 202, r.text


async def test_files_that_are_not_what_they_claim_send_nothing(
    services: Services, stack: Stack, tenants: TenantFactory, tmp_path: Path
) -> None:
    t = await tenants.create()
    ragged = tmp_path / "deals.csv"
    ragged.write_text(
        "Record ID,Deal Stage,Create Date\n7301,Closed Won,2026-09-01\n7302,Closed, Won,2026-09-02\n"
    )
    before = await produced(stack)
    code, said = await run_import(stack, t, "hubspot-deals", "hubspot-deals.csv", "sf-task.csv")
    assert code == 2
    assert (
        "sf-task.csv: is not a HubSpot deals export: a HubSpot deals export needs column 'Record ID'" in said
    )
    assert "Nothing was sent." in said
    code, said = await run_import(stack, t, "hubspot", "hubspot-contacts.csv", ragged)
    assert code == 2
    assert "deals.csv: row 3 has a value in column 4 ('2026-09-02') but the header names 3 columns" in said
    assert await produced(stack) == before


async def test_a_deal_already_won_by_webhook_is_not_imported_again(
    services: Services, stack: Stack, engine: AsyncEngine, tenants: TenantFactory, tmp_path: Path
) -> None:
    """HubSpot names its webhook events by notification: the import finds the fact in the deal's state."""
    t = await tenants.create()
    won = {"event_id": "hubspot:48291:7741:105:7401", "type": "deal.won", "deal_id": "7401",
           "occurred_at": "2026-10-02T09:00:00Z", "amount": "5000", "rep_id": "r-dana"}  # fmt: skip
    async with httpx.AsyncClient(base_url=services.ingest_url) as ingest:
        r = await ingest.post(
            f"/v1/events/{t.slug}", json=won, headers={"Authorization": f"Bearer {t.ingest_key}"}
        )
    assert r.status_code == 202, r.text
    await wait_folded(engine, t.slug, 1)
    deals = tmp_path / "deals.csv"
    deals.write_text(
        "Record ID,Deal Stage,Amount,Close Date,Create Date,Deal owner\n"
        "7401,Closed Won,5000,2026-10-02,2026-09-01 10:00,Dana Whitfield\n"
        "7402,Closed Won,7000,2026-10-03,2026-09-02 10:00,Dana Whitfield\n"
    )
    code, said = await run_import(stack, t, "hubspot", deals)
    assert code == 0, said
    assert "Sent 3 events (1 left out as already known)" in said
    await wait_folded(engine, t.slug, 4)
    assert await events_folded(engine, t.slug) == 4
