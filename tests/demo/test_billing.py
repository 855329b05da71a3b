"""The demo's billing: Stripe events that verify with Stripe's own library and with the ingest's
verifier, the same for the same seed, and with the planted unit economics in them.

The economics here are counted from the events alone, with none of the API's code: each account's
MRR over time from its Stripe events, its first touch from the contact its subscription names and
that contact's lead, spend from the model's plan, and rep costs from the roster.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import stripe as stripe_library
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.demo import billing, model
from devstack.demo.billing import stripe_body
from devstack.demo.model import Organisation
from devstack.demo.send import register
from devstack.demo.simulate import DemoEvent
from devstack.demo.vendors import Credentials, payloads, sign
from services.api.kit.economics_reads import economics_read
from services.api.kit.reads import AnswerCache, ReadPool, Reads
from services.api.kit.windows import WindowSpec
from services.api.planning import service as planning
from services.api.planning.routes import FIT_DAYS
from services.core.tenancy import create_key
from services.ingest.sources import stripe
from services.ingest.sources.common import InboundRequest, MappingContext, SignatureError
from tests.conftest import Services, Stack
from tests.demo.conftest import END, SMALL, LoadedDemo, SmallOrg
from tests.factories import TenantFactory

SECRET = "whsec_" + "ZGVtby1zdHJpcGUtc2lnbmluZy1zZWNyZXQ"
URL = "https://hooks.salesloop.example/webhooks/stripe/demo"
MONTH_DAYS = 30.4375
WINDOW_DAYS = 90  # the report's window: the last 90 days


@dataclass(frozen=True)
class Account:
    customer: str
    channel: str | None  # the first touch: the lead channel of the contact the subscription names
    moves: tuple[tuple[datetime, int], ...]  # (when, MRR after), in time order
    yearly: bool

    @property
    def started(self) -> datetime:
        return self.moves[0][0]

    def mrr_at(self, moment: datetime) -> int:
        return next((mrr for at, mrr in reversed(self.moves) if at < moment), 0)

    def churns(self, lo: datetime, hi: datetime) -> int:
        pairs = zip(self.moves, self.moves[1:], strict=False)
        return sum(1 for (_, was), (at, now) in pairs if was > 0 and now == 0 and lo <= at < hi)


def accounts(events: list[DemoEvent]) -> list[Account]:
    """Every billing account, read from the Stripe event objects (cents, intervals and all)."""
    channel = {e.contact_id: e.channel for e in events if e.type == "lead.created"}
    by_customer: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        if e.via == "stripe":
            by_customer[stripe_body(e)["data"]["object"]["customer"]].append(stripe_body(e))
    out = []
    for customer, bodies in by_customer.items():
        bodies.sort(key=lambda b: (b["created"], b["type"] != "customer.subscription.created"))
        moves = []
        for b in bodies:
            sub = b["data"]["object"]
            (item,) = sub["items"]["data"]
            price, live = item["price"], sub["status"] == "active"
            per_month = price["unit_amount"] / 100 / (12 if price["recurring"]["interval"] == "year" else 1)
            at = datetime.fromtimestamp(b["created"], UTC)
            moves.append((at, round(per_month * item["quantity"]) if live else 0))
        first = bodies[0]["data"]["object"]
        contact = first["metadata"].get("contact_id")
        yearly = first["items"]["data"][0]["price"]["recurring"]["interval"] == "year"
        out.append(Account(customer, channel.get(contact), tuple(moves), yearly))
    return out


# --- the events themselves ------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_billing_and_another_seed_other_ids(small_org: SmallOrg) -> None:
    org, events = small_org
    again = billing.with_billing(org, [e for e in events if e.via != "stripe"])
    assert [orjson.dumps(stripe_body(e)) for e in again if e.via == "stripe"] == [
        orjson.dumps(stripe_body(e)) for e in events if e.via == "stripe"
    ]
    other = billing.with_billing(model.build(**{**SMALL, "seed": 8}, end=END), [])
    customers = {a.customer for a in accounts(events)}
    assert other
    assert {e.event_id for e in other}.isdisjoint(e.event_id for e in events)
    assert {a.customer for a in accounts(other)}.isdisjoint(customers)


def test_every_billing_event_is_signed_as_stripe_signs_and_maps_to_its_event(small_org: SmallOrg) -> None:
    _, events = small_org
    billed = [e for e in events if e.via == "stripe"]
    creds = Credentials(ingest_key="sl_000000000000_key", stripe=SECRET)
    sent = payloads(billed, "demo", creds, frozenset({"stripe"}))
    assert [p.via for p in sent] == ["stripe"] * len(billed)
    now = datetime.now(UTC)
    ctx = MappingContext(currency="USD", received_at=now)
    for payload, e in zip(sent, billed, strict=True):
        headers = sign(payload, URL, creds, now)
        assert stripe_library.WebhookSignature.verify_header(
            payload.body, headers["Stripe-Signature"], SECRET, tolerance=300
        )
        stripe.verify(InboundRequest("POST", URL, headers, payload.body, now), SECRET)
        (mapped,) = stripe.to_events(stripe.parse(payload.body), ctx).events
        got = mapped.event
        assert (got.event_id, got.type, got.occurred_at, got.account_id) == (
            e.event_id, e.type, e.occurred_at, e.account_id,
        )  # fmt: skip
        assert got.mrr == e.mrr
    forged = sign(sent[0], URL, Credentials(ingest_key="k", stripe="whsec_another"), now)
    request = InboundRequest("POST", URL, forged, sent[0].body, now)
    assert _refused(request)


def _refused(request: InboundRequest) -> bool:
    try:
        stripe.verify(request, SECRET)
    except SignatureError:
        return True
    return False


def test_accounts_subscribe_after_their_deals_are_won(small_org: SmallOrg) -> None:
    org, events = small_org
    won = {e.contact_id: e for e in events if e.type == "deal.won"}
    by_contact: dict[str, DemoEvent] = {}
    for e in events:
        if e.via == "stripe" and e.contact_id is not None:
            by_contact.setdefault(e.contact_id, e)
    assert by_contact
    for contact, first in by_contact.items():
        deal = won[contact]
        assert deal.occurred_at < first.occurred_at <= deal.occurred_at + timedelta(days=2)
    # Every account has its events in the past, and only the installed base reaches before the period.
    assert all(e.occurred_at < org.end for e in events if e.via == "stripe")
    unknown = [a for a in accounts(events) if a.channel is None]
    assert unknown
    assert all(a.started.date() < org.start for a in unknown)


# --- the planted structure ------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    lo: datetime
    hi: datetime

    @classmethod
    def last(cls, org: Organisation, days: int = WINDOW_DAYS) -> Window:
        return cls(org.end - timedelta(days=days), org.end)

    @property
    def months(self) -> float:
        return (self.hi - self.lo).days / MONTH_DAYS

    def days(self) -> list[date]:
        return [self.lo.date() + timedelta(days=i) for i in range((self.hi - self.lo).days)]


def logo_retention(group: list[Account], w: Window) -> float:
    """Of the customers at the window's start, the share still customers at its end, a year at this pace."""
    start = [a for a in group if a.mrr_at(w.lo) > 0]
    kept = sum(1 for a in start if a.mrr_at(w.hi) > 0)
    return float((kept / len(start)) ** (12 / w.months))


def unit_costs(org: Organisation, group: list[Account], w: Window) -> dict[str, float]:
    """ARPA, new customers, monthly churn and CAC of `group` over the window (per SPEC 5.10)."""
    end = [a.mrr_at(w.hi) for a in group if a.mrr_at(w.hi) > 0]
    new = sum(1 for a in group if w.lo <= a.started < w.hi)
    start = sum(1 for a in group if a.mrr_at(w.lo) > 0)
    churned = sum(a.churns(w.lo, w.hi) for a in group)
    return {
        "arpa": sum(end) / len(end),
        "new": new,
        "monthly_churn": churned / start / w.months if start else float("nan"),
    }


def spend(org: Organisation, channel: str | None, w: Window) -> float:
    total = 0.0
    for day in w.days():
        month = f"{day:%Y-%m}"
        days_in = ((day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)).day
        for (name, planned), amount in org.spend.items():
            if planned == month and channel in (None, name):
                total += amount / days_in
    return total


def sales_cost(org: Organisation, w: Window) -> float:
    return sum(r.monthly_cost / MONTH_DAYS for day in w.days() for r in org.reps if r.hired_at <= day)


def test_one_launch_cohort_churns_at_renewal(small_org: SmallOrg) -> None:
    org, events = small_org
    plant = billing.plant(org)
    cohorts: dict[str, list[Account]] = defaultdict(list)
    for a in accounts(events):
        cohorts[f"{a.started:%Y-%m}"].append(a)

    def lost(group: list[Account]) -> float:
        """The share of `group` that churned within 13 months of its start."""
        return sum(1 for a in group if a.churns(a.started, a.started + timedelta(days=396))) / len(group)

    spike = lost(cohorts.pop(plant.churn_cohort))
    assert spike >= 0.4
    assert lost([a for group in cohorts.values() for a in group if a.channel != plant.never_pays_back]) < 0.1
    # No other cohort of ten accounts or more lost as large a share.
    assert all(lost(group) < spike for group in cohorts.values() if len(group) >= 10)


def test_the_cohort_makes_retention_red_while_acquisition_pays_back(small_org: SmallOrg) -> None:
    """SPEC 5.10's lights on the report's window: product/market red (logo retention under 0.90 a
    year) because of the cohort alone; go-to-market green (LTV:CAC >= 3, payback <= 12 months)."""
    org, events = small_org
    plant, w = billing.plant(org), Window.last(org)
    everybody = accounts(events)
    assert logo_retention(everybody, w) < 0.90
    without = [a for a in everybody if f"{a.started:%Y-%m}" != plant.churn_cohort]
    assert logo_retention(without, w) >= 0.90
    u = unit_costs(org, everybody, w)
    cac = (spend(org, None, w) + sales_cost(org, w)) / u["new"]
    margin = u["arpa"] * plant.gross_margin
    assert cac / margin <= 12
    assert margin / u["monthly_churn"] / cac >= 3


def test_one_channel_pays_back_fast_and_one_never(small_org: SmallOrg) -> None:
    org, events = small_org
    plant, w = billing.plant(org), Window.last(org)
    everybody = accounts(events)
    shared = sales_cost(org, w) / unit_costs(org, everybody, w)["new"]  # per new customer, every channel
    payback, cac = {}, {}
    for channel in (c.name for c in org.channels):
        group = [a for a in everybody if a.channel == channel]
        u = unit_costs(org, group, w)
        cac[channel] = spend(org, channel, w) / u["new"] + shared
        payback[channel] = cac[channel] / (u["arpa"] * plant.gross_margin)
    assert min(payback, key=lambda c: payback[c]) == plant.fast_payback
    assert payback[plant.fast_payback] < 3
    assert max(payback, key=lambda c: payback[c]) == plant.never_pays_back
    assert payback[plant.never_pays_back] > 12
    # Those of its customers who have left all did so before their margin paid their cost back.
    left = {c: [a for a in everybody if a.channel == c and a.moves[-1][1] == 0] for c in payback}
    assert left[plant.never_pays_back]
    for a in left[plant.never_pays_back]:
        margin = sum(
            mrr * (until - at).total_seconds() / (MONTH_DAYS * 86_400)
            for (at, mrr), (until, _) in zip(a.moves, a.moves[1:], strict=False)
        )
        assert margin * plant.gross_margin < cac[plant.never_pays_back]


def test_the_headcount_grows_by_more_than_a_quarter_in_the_last_quarter(small_org: SmallOrg) -> None:
    org, events = small_org

    def active(day: date) -> int:
        return sum(1 for r in org.reps if r.hired_at <= day)

    quarter_ago = org.last_day - timedelta(days=91)
    assert active(org.last_day) / active(quarter_ago) - 1 > 0.25
    wave = {r.rep_id for r in org.reps if r.cohort == "wave"}
    assert not wave & {e.rep_id for e in events}  # still onboarding: nothing sold, nobody called


# --- through the services -------------------------------------------------------------------------


async def test_the_fit_check_on_the_loaded_demo_finds_the_planted_structure(
    loaded: LoadedDemo, stack: Stack
) -> None:
    """The demo loaded through the real routes (its billing as signed Stripe webhooks) and folded, read
    at the demo's end: product/market red for the churning cohort, go-to-market green, and the
    wave's headcount growth flagged as premature scaling; the report window's summary is what the
    events say, channel by channel."""
    org, slug = loaded.org, loaded.tenant.slug
    plant, w = billing.plant(org), Window.last(org)
    pool = await ReadPool.open(stack.settings(db_pool_size=2))
    try:
        reads = Reads(pool, AnswerCache())
        answer = await planning.fit(reads, tenant=slug, spec=WindowSpec(days=FIT_DAYS), now=org.end)
        fit = orjson.loads(answer)
        read = await economics_read(reads, slug, spec=WindowSpec(days=WINDOW_DAYS), now=org.end)
    finally:
        await pool.close()
    assert (fit["product_market"]["light"], fit["go_to_market"]["light"]) == ("red", "green"), fit
    assert fit["premature_scaling"] is True
    ago = sum(1 for r in org.reps if r.hired_at <= _months_before(org.end.date(), 3))
    assert (fit["headcount"]["now"], fit["headcount"]["quarter_ago"]) == (len(org.reps), ago)
    assert fit["headcount"]["growth"] > 0.25

    assert read is not None
    everybody = accounts(loaded.events)
    overall = read.summary.overall
    assert overall.customers_start == sum(1 for a in everybody if a.mrr_at(w.lo) > 0)
    assert overall.customers_new == sum(1 for a in everybody if w.lo <= a.started < w.hi)
    assert overall.customers_churned == sum(a.churns(w.lo, w.hi) for a in everybody)
    assert overall.mrr_end == sum(a.mrr_at(w.hi) for a in everybody)
    channels = read.summary.channels
    payback = {c: f.cac_payback_months for c, f in channels.items() if f.cac_payback_months is not None}
    assert min(payback, key=lambda c: payback[c]) == plant.fast_payback
    assert max(payback, key=lambda c: payback[c]) == plant.never_pays_back
    for channel in payback:
        group = [a for a in everybody if a.channel == channel]
        assert channels[channel].customers_new == sum(1 for a in group if w.lo <= a.started < w.hi)


def _months_before(day: date, months: int) -> date:
    """The same day of the month `months` earlier (the month's last day when it has no such day)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


async def test_a_key_that_may_not_set_the_margin_still_registers_the_rest(
    services: Services, tenants: TenantFactory, engine: AsyncEngine, small_org: SmallOrg
) -> None:
    org, _ = small_org
    tenant = await tenants.create(prefix="demo-margin")
    scopes = ["reps:write", "hiring:write", "demand:write", "pipeline:write", "economics:read"]
    key = await create_key(engine, tenant.slug, scopes)
    async with httpx.AsyncClient(timeout=30) as client:
        notes = await register(client, services.api_url, key, org)
        settings = await client.get(
            f"{services.api_url}/v1/economics/settings", headers={"Authorization": f"Bearer {key}"}
        )
    assert any("economics settings not set (403)" in note for note in notes), notes
    assert settings.json()["gross_margin"] is None
