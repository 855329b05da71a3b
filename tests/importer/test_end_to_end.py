"""`salesloop import` through the real processes: the sample exports into an empty tenant give the
metrics, channels and ramp an independent reading of the same files gives (tests/importer/reference.py);
a dry run, a second run, a foreign or malformed file send nothing; a fact received by webhook as well
as imported counts once, whichever came first."""

from __future__ import annotations

import asyncio
import secrets
import statistics
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Services, Stack
from tests.factories import TenantCtx, TenantFactory
from tests.importer import reference
from tests.importer.live import (
    DANA_HS,
    EVE_HS,
    change,
    flush,
    notification,
    produced,
    receive_hubspot,
    run_import,
)
from tests.importer.support import DANA_SF, EVE_SF
from tests.ingest.test_webhooks import SF_ORG, Secrets, sign
from tests.support import events_folded, wait_folded
from tests.system.reference import Org, assert_metrics_equal, rep_metrics
from tests.system.test_vendors import salesloop, sf_envelope

# On the day of the exports' first record: every month of the reps' tenure is covered by the files
# (months before a tenant's first event are unknown, and so is a first win in them).
HIRED = date(2026, 9, 1)
FROM, TO = date(2026, 9, 1), date(2026, 11, 30)
ORG = Org(reps={"r-dana": "UTC", "r-eve": "UTC"}, teams={"r-dana": "west", "r-eve": "west"},
          quotas={"r-dana": Decimal(20000)})  # fmt: skip
ALIASES = {"r-dana": {"salesforce_user_id": DANA_SF, "hubspot_owner_id": DANA_HS},
           "r-eve": {"salesforce_user_id": EVE_SF, "hubspot_owner_id": EVE_HS}}  # fmt: skip
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
    by_user = {aliases["salesforce_user_id"]: rep for rep, aliases in ALIASES.items()}
    return reference.hubspot(by_name) + reference.salesforce(by_user) + reference.json_lines()


async def register_reps(api: httpx.AsyncClient, t: TenantCtx) -> None:
    for rep, aliases in ALIASES.items():
        body = {"name": rep, "team": "west", "timezone": "UTC", "hired_at": HIRED.isoformat(),
                "aliases": aliases}  # fmt: skip
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
        0: (date(2026, 9, 1), date(2026, 10, 1)),
        1: (date(2026, 10, 1), date(2026, 11, 1)),
        2: (date(2026, 11, 1), date(2026, 12, 1)),
    }.items():
        assert months[month]["reps"] == len(ORG.reps), month
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
    await flush(services, t, ("-", "00Q5e00000MnB2xEAF"), "salesforce")
    await wait_folded(engine, t.slug, len(events) + 2)
    assert await answers(api, t) == first

    # The same HubSpot contact and won deal notified afterwards (HubSpot retries a failed delivery for
    # a day): the adapter names a record's creation, qualification and win as the import does.
    contact, deal = "51301", "7001"
    await receive_hubspot(services, engine, t, [
        notification(201, "contact.creation", contact, "2026-09-01T09:12Z"),
        change(202, "contact", contact, "2026-09-03T14:20Z", "lifecyclestage", "marketingqualifiedlead"),
        change(203, "contact", contact, "2026-09-08T10:05Z", "lifecyclestage", "salesqualifiedlead"),
        notification(204, "deal.creation", deal, "2026-09-08T10:30Z"),
        change(205, "deal", deal, "2026-09-08T10:31Z", "hubspot_owner_id", DANA_HS),
        change(206, "deal", deal, "2026-09-08T10:32Z", "amount", "24000"),
        change(207, "deal", deal, "2026-09-30T15:00Z", "dealstage", "closedwon"),
    ])  # fmt: skip
    await flush(services, t, ("-", contact, deal), "hubspot")
    await wait_folded(engine, t.slug, len(events) + 5)
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


async def test_a_hubspot_deal_and_contact_notified_then_imported_count_once(
    services: Services,
    stack: Stack,
    engine: AsyncEngine,
    tenants: TenantFactory,
    api: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    t = await tenants.create()
    await register_reps(api, t)
    await receive_hubspot(services, engine, t, [
        notification(301, "contact.creation", "51401", "2026-09-01T09:00Z"),
        change(302, "contact", "51401", "2026-09-01T09:01Z", "hs_analytics_source", "ORGANIC_SEARCH"),
        change(303, "contact", "51401", "2026-09-03T11:00Z", "lifecyclestage", "marketingqualifiedlead"),
        notification(304, "deal.creation", "7401", "2026-09-05T10:00Z"),
        change(305, "deal", "7401", "2026-09-05T10:01Z", "hubspot_owner_id", DANA_HS),
        change(306, "deal", "7401", "2026-09-05T10:02Z", "amount", "5000"),
        change(307, "deal", "7401", "2026-10-02T09:00Z", "dealstage", "closedwon"),
        notification(308, "deal.associationChange", "7401", "2026-09-05T10:03Z", fromObjectId=7401,
                     toObjectId=51401, associationType="DEAL_TO_CONTACT", associationRemoved=False),
    ])  # fmt: skip
    await wait_folded(engine, t.slug, 4)

    # The exports hold those facts and one more deal and contact.
    (tmp_path / "contacts.csv").write_text(
        "Record ID,Create Date,Contact owner,Original Source,Became a Marketing Qualified Lead Date\n"
        "51401,2026-09-01 09:00,Dana Whitfield,Organic Search,2026-09-03 11:00\n"
        "51402,2026-09-02 09:00,Dana Whitfield,Organic Search,2026-09-04 11:00\n"
    )
    (tmp_path / "deals.csv").write_text(
        "Record ID,Deal Stage,Amount,Close Date,Create Date,Deal owner,Associated Contact IDs\n"
        "7401,Closed Won,5000,2026-10-02,2026-09-05 10:00,Dana Whitfield,51401\n"
        "7402,Closed Won,7000,2026-10-03,2026-09-06 10:00,Dana Whitfield,51402\n"
    )
    code, said = await run_import(stack, t, "hubspot", tmp_path / "contacts.csv", tmp_path / "deals.csv")
    assert code == 0, said
    assert "Sent 4 events (4 left out as already known)" in said
    await flush(services, t, ("-", "51401", "7401", "r-dana"), "import")
    await wait_folded(engine, t.slug, 8 + 4)

    dana = [
        {"type": "deal.created", "rep_id": "r-dana", "occurred_at": "2026-09-05T10:00Z"},
        {"type": "deal.won", "rep_id": "r-dana", "occurred_at": "2026-10-02T09:00Z", "amount": "5000"},
        {"type": "deal.created", "rep_id": "r-dana", "occurred_at": "2026-09-06T10:00Z"},
        {"type": "deal.won", "rep_id": "r-dana", "occurred_at": "2026-10-03T12:00Z", "amount": "7000"},
    ]  # fmt: skip
    got = await answers(api, t)
    assert_metrics_equal(got["r-dana"], rep_metrics(dana, {"r-dana"}, ORG, FROM, TO))
    organic = got["channels"]["organic_search"]
    assert (organic["leads"], organic["mqls"], organic["deals_created"], organic["deals_won"]) == (2, 2, 2, 2)
    assert organic["revenue_won"] == pytest.approx(12000.0)


async def test_a_deal_won_under_another_id_is_found_in_its_state_and_not_imported_again(
    services: Services, stack: Stack, engine: AsyncEngine, tenants: TenantFactory, tmp_path: Path
) -> None:
    """A client's own event id for the fact, or a HubSpot notification's from before the adapter named
    facts by record: the import finds the fact in the deal's state."""
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
