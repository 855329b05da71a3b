"""Unit economics (SPEC 5.10) end to end: a small billing history sent as Stripe webhooks signed by
Stripe's own library, newest first and partly twice, leads through the canonical endpoint after the
billing, spend and rep costs through the API; every figure of the summary worked out by hand below.

Window: 2026-04-01 .. 2026-06-29 (UTC tenant), 90 days = 90 / 30.4375 months. Plans: basic 100/month,
pro 250/month, annual 2400/year (= 200/month).

  customer  contact/lead channel    before the window          in the window
  cus_A     cA  paid_search          Jan 10 basic (100)         Apr 10 pro (+150 expansion);
                                                                 Jun 30 00:00 basic: after the window
  cus_B     cB  organic_search       Feb 1 annual (200)         Apr 15 updated, same MRR (no movement)
  cus_C     cC  paid_search          Mar 1 pro (250)            May 5 basic (-150 contraction),
                                                                 Jun 10 cancelled (-100 churn)
  cus_D     none: unattributed       Mar 15 2 x basic (200),    May 20 basic again (+100 reactivation)
                                     Mar 25 cancelled
  cus_E     cE  organic_search       -                          Apr 20 3 x annual (+600 new);
                                                                 Jul 5 cancelled: after the window
  cus_F     cF  paid_search          -                          May 1 basic (+100 new), Jun 1 cancelled
  cus_G     cG  organic_search       -                          Jun 5 pro, trialing (0: no customer)

Spend: paid_search 3000 in each of April, May, June (June: 29 of 30 days), events 600 in May.
Reps: r1 6000/month all along; r2 3000/month from May 1, left June 1 (31 days); r3 no cost.
Settings: gross margin 0.8, sales cost 1000/month.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
import stripe
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.economics import AccountWindow, economics_summary, group_accounts, rep_cost
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import create_key, set_secret
from tests.api.org import Org, organisation
from tests.conftest import Services
from tests.factories import TenantFactory

WINDOW = {"from": "2026-04-01", "to": "2026-06-29"}
MONTHS = 90 / 30.4375
SECRET = "whsec_economics-tests-0123456789"
BASIC = ("price_basic", 10000, "month")
PRO = ("price_pro", 25000, "month")
ANNUAL = ("price_annual", 240000, "year")
_ids = itertools.count()


def at(text_: str) -> int:
    return int(datetime.fromisoformat(text_).replace(tzinfo=UTC).timestamp())


def stripe_event(
    kind: str, when: str, customer: str, plan: tuple[str, int, str], *, quantity: int = 1,
    status: str = "active", contact: str | None = None, sub: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A `customer.subscription.<kind>` event as Stripe sends it."""
    price_id, unit_amount, interval = plan
    price = {"id": price_id, "object": "price", "currency": "usd", "unit_amount": unit_amount,
             "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}  # fmt: skip
    subscription = {
        "id": sub or f"sub_{customer}", "object": "subscription", "customer": customer, "currency": "usd",
        "status": status, "metadata": {"contact_id": contact} if contact else {},
        "items": {"object": "list",
                  "data": [{"id": f"si_{next(_ids)}", "price": price, "quantity": quantity}]},
    }  # fmt: skip
    return {"id": f"evt_{next(_ids):04d}", "object": "event", "type": f"customer.subscription.{kind}",
            "created": at(when), "livemode": False, "data": {"object": subscription}}  # fmt: skip


def billing() -> list[dict[str, Any]]:
    return [
        stripe_event("created", "2026-01-10T09:00", "cus_A", BASIC, contact="cA"),
        stripe_event("updated", "2026-04-10T09:00", "cus_A", PRO, contact="cA"),
        stripe_event("updated", "2026-06-30T00:00", "cus_A", BASIC, contact="cA"),
        stripe_event("created", "2026-02-01T09:00", "cus_B", ANNUAL, contact="cB"),
        stripe_event("updated", "2026-04-15T09:00", "cus_B", ANNUAL, contact="cB"),
        stripe_event("created", "2026-03-01T09:00", "cus_C", PRO, contact="cC"),
        stripe_event("updated", "2026-05-05T09:00", "cus_C", BASIC, contact="cC"),
        stripe_event("deleted", "2026-06-10T09:00", "cus_C", BASIC, contact="cC", status="canceled"),
        stripe_event("created", "2026-03-15T09:00", "cus_D", BASIC, quantity=2, sub="sub_D1"),
        stripe_event("deleted", "2026-03-25T09:00", "cus_D", BASIC, quantity=2, sub="sub_D1",
                     status="canceled"),
        stripe_event("created", "2026-05-20T09:00", "cus_D", BASIC, sub="sub_D2"),
        stripe_event("created", "2026-04-20T09:00", "cus_E", ANNUAL, quantity=3, contact="cE"),
        stripe_event("deleted", "2026-07-05T09:00", "cus_E", ANNUAL, quantity=3, contact="cE",
                     status="canceled"),
        stripe_event("created", "2026-05-01T09:00", "cus_F", BASIC, contact="cF"),
        stripe_event("deleted", "2026-06-01T09:00", "cus_F", BASIC, contact="cF", status="canceled"),
        stripe_event("created", "2026-06-05T09:00", "cus_G", PRO, contact="cG", status="trialing"),
    ]  # fmt: skip


async def post_stripe(org: Org, event: dict[str, Any]) -> None:
    payload = orjson.dumps(event).decode()
    header = stripe.WebhookSignature.generate_signature_header(
        payload, SECRET, timestamp=int(datetime.now(UTC).timestamp())
    )
    r = await org.ingest.post(
        f"/webhooks/stripe/{org.tenant.slug}",
        content=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    assert r.status_code == 202, r.text


LEADS = {"cA": "paid_search", "cB": "organic_search", "cC": "paid_search", "cE": "organic_search",
         "cF": "paid_search", "cG": "organic_search"}  # fmt: skip


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    async with organisation(services, tenants, engine) as o:
        await set_secret(engine, DEV_SECRET_KEY, o.tenant.slug, "stripe", SECRET)
        events = billing()
        # Newest first, and a third of them delivered again (Stripe retries).
        for event in events[::-1] + events[::3]:
            await post_stripe(o, event)
        # The leads arrive after the billing they attribute.
        for contact, channel in LEADS.items():
            o.event("lead.created", datetime(2025, 12, 1, tzinfo=UTC), contact_id=contact, channel=channel)
        await o.flush(also_folded=len(events))
        await o.rep("r1", hired_at="2025-01-01", monthly_cost=6000)
        await o.rep("r2", hired_at="2026-05-01", left_at="2026-06-01", monthly_cost=3000)
        await o.rep("r3", hired_at="2025-06-01")
        for channel, month, amount in [
            ("paid_search", m, "3000") for m in ("2026-04", "2026-05", "2026-06")
        ] + [("events", "2026-05", "600")]:
            r = await o.request(
                "PUT", "/v1/demand/spend", json={"channel": channel, "month": month, "amount": amount}
            )
            assert r.status_code == 201, r.text
        r = await o.request(
            "PUT", "/v1/economics/settings", json={"gross_margin": "0.8", "sales_cost_monthly": "1000"}
        )
        assert r.status_code == 200, r.text
        yield o


def approx(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if v is None or isinstance(v, int) else pytest.approx(v, rel=1e-9) for k, v in figures.items()
    }


# The sales cost of the window: r1 all 90 days, r2 31 days (May), the overhead 90 days.
SALES = (6000 * 90 + 3000 * 31 + 1000 * 90) / 30.4375


def expected_overall() -> dict[str, Any]:
    monthly_churn = 2 / 3 / MONTHS  # C and F churned; A, B, C were customers at the start
    arpa = (250 + 200 + 100 + 600) / 4  # A, B, D, E at the end
    ltv = arpa * 0.8 / monthly_churn
    cac = (3000 + 3000 + 2900 + 600 + SALES) / 2  # E and F are new
    return {
        "mrr_start": 550.0, "mrr_end": 1150.0, "new_mrr": 700.0, "reactivation_mrr": 100.0,
        "expansion_mrr": 150.0, "contraction_mrr": 150.0, "churned_mrr": 200.0,
        "customers_start": 3, "customers_end": 4, "customers_new": 2, "customers_reactivated": 1,
        "customers_churned": 2, "logo_retention": 2 / 3, "net_revenue_retention": 450 / 550,
        "gross_revenue_retention": 300 / 550, "arpa": arpa, "monthly_churn": monthly_churn, "ltv": ltv,
        "marketing_spend": 9500.0, "sales_cost": SALES, "cac": cac,
        "cac_payback_months": cac / (arpa * 0.8), "ltv_to_cac": ltv / cac,
    }  # fmt: skip


def expected_channels() -> dict[str, Any]:
    zero = {
        "mrr_start": 0.0, "mrr_end": 0.0, "new_mrr": 0.0, "reactivation_mrr": 0.0, "expansion_mrr": 0.0,
        "contraction_mrr": 0.0, "churned_mrr": 0.0, "customers_start": 0, "customers_end": 0,
        "customers_new": 0, "customers_reactivated": 0, "customers_churned": 0, "logo_retention": None,
        "net_revenue_retention": None, "gross_revenue_retention": None, "arpa": None, "monthly_churn": None,
        "ltv": None, "marketing_spend": None, "sales_cost": 0.0, "cac": None, "cac_payback_months": None,
        "ltv_to_cac": None,
    }  # fmt: skip
    # paid_search: A (100 -> 250), C (250 -> 0), F (new, churned); one new customer of the tenant's two.
    paid_ltv = 250 * 0.8 / (2 / 2 / MONTHS)
    paid_cac = 8900 + SALES / 2
    paid = zero | {
        "mrr_start": 350.0, "mrr_end": 250.0, "new_mrr": 100.0, "expansion_mrr": 150.0,
        "contraction_mrr": 150.0, "churned_mrr": 200.0, "customers_start": 2, "customers_end": 1,
        "customers_new": 1, "customers_churned": 2, "logo_retention": 0.5, "net_revenue_retention": 250 / 350,
        "gross_revenue_retention": 100 / 350, "arpa": 250.0, "monthly_churn": 1 / MONTHS, "ltv": paid_ltv,
        "marketing_spend": 8900.0, "sales_cost": SALES / 2, "cac": paid_cac,
        "cac_payback_months": paid_cac / 200, "ltv_to_cac": paid_ltv / paid_cac,
    }  # fmt: skip
    # organic_search: B (200 throughout), E (new 600); no churn, so no LTV; no spend: sales cost only.
    organic = zero | {
        "mrr_start": 200.0, "mrr_end": 800.0, "new_mrr": 600.0, "customers_start": 1, "customers_end": 2,
        "customers_new": 1, "logo_retention": 1.0, "net_revenue_retention": 1.0,
        "gross_revenue_retention": 1.0,
        "arpa": 400.0, "monthly_churn": 0.0, "sales_cost": SALES / 2, "cac": SALES / 2,
        "cac_payback_months": SALES / 2 / 320,
    }  # fmt: skip
    # unattributed: D came back; events: spend, no customers.
    unattributed = zero | {"mrr_end": 100.0, "reactivation_mrr": 100.0, "customers_end": 1,
                           "customers_reactivated": 1, "arpa": 100.0}  # fmt: skip
    events = zero | {"marketing_spend": 600.0}
    return {"events": events, "organic_search": organic, "paid_search": paid, "unattributed": unattributed}


async def test_the_summary_is_what_the_billing_history_says(org: Org) -> None:
    body = await org.get("/v1/economics/summary", **WINDOW)
    assert (body["from"], body["to"]) == ("2026-04-01", "2026-06-29")
    assert body["as_of"] is not None
    assert body["settings"] == {"gross_margin": 0.8, "sales_cost_monthly": 1000.0, "failure_rate": None}
    assert body["overall"] == approx(expected_overall())
    assert body["channels"] == {k: approx(v) for k, v in expected_channels().items()}


async def test_each_stripe_event_is_one_movement_row_however_often_delivered(org: Org) -> None:
    async with org.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT count(*), count(DISTINCT event_id) FROM mrr_movements WHERE tenant = :t"),
                {"t": org.tenant.slug},
            )
        ).one()
    assert tuple(rows) == (len(billing()), len(billing()))


async def test_a_window_before_any_billing_has_null_ratios(org: Org) -> None:
    body = await org.get("/v1/economics/summary", **{"from": "2025-10-01", "to": "2025-10-31"})
    overall = body["overall"]
    assert (overall["mrr_start"], overall["mrr_end"], overall["customers_new"]) == (0.0, 0.0, 0)
    ratios = ("logo_retention", "net_revenue_retention", "arpa", "monthly_churn", "ltv", "cac", "ltv_to_cac")
    assert all(overall[k] is None for k in ratios)


async def test_another_tenant_sees_none_of_it_and_scopes_are_enforced(
    org: Org, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    other = await tenants.create()
    r = await org.request("GET", "/v1/economics/summary", key=other.api_key, params=WINDOW)
    assert r.status_code == 200, r.text
    assert r.json()["overall"]["mrr_end"] == 0.0
    assert r.json()["channels"] == {}
    reader = await create_key(engine, org.tenant.slug, ["economics:read"])
    r = await org.request("PUT", "/v1/economics/settings", key=reader, json={"gross_margin": "0.5"})
    assert r.status_code == 403, r.text
    metrics = await create_key(engine, org.tenant.slug, ["metrics:read"])
    r = await org.request("GET", "/v1/economics/summary", key=metrics, params=WINDOW)
    assert r.status_code == 403, r.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gross_margin": "1.5"}, "gross_margin"),
        ({"failure_rate": -0.1}, "failure_rate"),
        ({"sales_cost_monthly": "-1"}, "sales_cost_monthly"),
        ({"gross_margin": "0.8", "margin": 1}, "margin"),
    ],
)
async def test_bad_settings_are_refused_naming_the_field(org: Org, body: dict[str, Any], field: str) -> None:
    r = await org.request("PUT", "/v1/economics/settings", json=body)
    assert r.status_code == 422, r.text
    assert field in r.text
    assert (await org.get("/v1/economics/settings"))["gross_margin"] == 0.8


# --- the pure figures (services/api/kit/economics.py) ----------------------------------------------


def test_rep_cost_counts_the_days_employed_in_the_window() -> None:
    april = {"start": date(2026, 4, 1), "end": date(2026, 4, 30)}
    assert rep_cost(3043.75, hired_at=None, left_at=None, **april) == pytest.approx(3000.0)
    assert rep_cost(3043.75, hired_at=date(2026, 4, 21), left_at=None, **april) == pytest.approx(1000.0)
    # Gone from its leaving day on: 1-10 April.
    assert rep_cost(3043.75, hired_at=None, left_at=date(2026, 4, 11), **april) == pytest.approx(1000.0)
    assert rep_cost(3043.75, hired_at=date(2026, 5, 1), left_at=None, **april) == 0.0
    assert rep_cost(3043.75, hired_at=None, left_at=date(2026, 4, 1), **april) == 0.0


def test_channels_share_the_sales_cost_by_new_customers_and_add_up_to_the_tenant() -> None:
    accounts = [
        AccountWindow("referral", mrr_end=100, new=100, customers_new=1),
        AccountWindow("referral", mrr_end=50, new=50, customers_new=1),
        AccountWindow("events", mrr_end=300, new=300, customers_new=1),
        AccountWindow(None, mrr_start=80, mrr_end=80),
    ]
    summary = economics_summary(
        group_accounts(accounts),
        days=30,
        gross_margin=None,
        marketing_spend={"events": 900.0},
        sales_cost=600.0,
    )
    referral, events = summary.channels["referral"], summary.channels["events"]
    assert (referral.sales_cost, referral.cac) == (400.0, 200.0)  # 600 / 3 new customers each, no spend
    assert (events.sales_cost, events.cac) == (200.0, 1100.0)
    assert summary.overall.cac == (900 + 600) / 3 == (referral.cac * 2 + events.cac) / 3
    assert summary.channels["unattributed"].cac is None  # no new customer
    assert summary.overall.ltv is None  # no gross margin set
    assert summary.overall.cac_payback_months is None


def test_without_any_recorded_cost_there_is_no_cac() -> None:
    groups = group_accounts([AccountWindow("referral", mrr_end=100, new=100, customers_new=1)])
    summary = economics_summary(groups, days=30, gross_margin=0.8, marketing_spend={}, sales_cost=None)
    assert summary.overall.cac is None
    assert summary.overall.marketing_spend is None
    assert summary.channels["referral"].cac is None
