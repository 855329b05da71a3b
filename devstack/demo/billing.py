"""The demo organisation's billing: its customers' Stripe subscriptions, as Stripe's webhooks carry
them (`customer.subscription.created`, `.updated`, `.deleted`). Pure and deterministic: the same
organisation always gives the same events, ids included.

Accounts (a Stripe account is its `customer` id):
- every won deal's buyer subscribes within two days of the win. The subscription's metadata names
  the deal's contact (`contact_id`, as a CRM integration writes it), so the account's first touch is
  the channel of the contact's lead. The deal's amount is a year of seats at SEAT_PRICE a month,
  paid monthly or, for YEARLY_SHARE of the accounts, yearly in advance;
- the installed base: INSTALLED_PER_REP accounts per rep that started in the two years before the
  simulated period, with no lead in the data (their first touch is unknown).

Every month an account may add seats (EXPANSION), remove some (CONTRACTION) or, on a monthly plan,
cancel (its channel's CHURN; a yearly plan can only leave at its renewal); some who cancel come back
with a new subscription (REACTIVATION).

Planted, in the API's terms (`BillingPlant`):
- a channel with fast payback and one that never pays back: marketing spend per MRR won differs
  over a hundredfold between the cheapest and the dearest channel, and the dearest one's customers
  (SHORT_LIVED) all leave within four months, long before their margin has paid their acquisition
  back;
- a churn spike in one cohort: the installed base's launch-offer cohort (LAUNCH_PER_REP accounts per
  rep on yearly plans, started in `churn_cohort`) mostly does not renew (RENEWAL_LOSS of it), so its
  cancellations fall in the last month or so of the data. The other customers churn so little
  that, without it, logo retention would be well above 90 % a year.
The hiring wave that makes the growth premature is the model's (`Plant.hiring_wave`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from devstack.demo.model import CHANNELS, Organisation
from devstack.demo.simulate import DemoEvent

SEAT_PRICE = 100  # a month, in the tenant's currency (USD, the demo tenant's)
CURRENCY = "usd"
GROSS_MARGIN = 0.8  # PUT /v1/economics/settings
YEARLY_SHARE = 0.25
INSTALLED_PER_REP = 6
INSTALLED_DAYS = 730
LAUNCH_PER_REP = 1.2
LAUNCH_BEFORE_END_DAYS = 380  # the launch cohort is the calendar month this many days before the end
RENEWAL_LOSS = 0.65
# Monthly churn of a monthly plan by first-touch channel (None: the installed base).
CHURN: dict[str | None, float] = {
    "referral": 0.003,
    "organic_search": 0.004,
    "paid_search": 0.006,
    "events": 0.006,
    None: 0.004,
}
# A channel whose customers all leave within a few months (months, drawn uniformly), on monthly plans.
SHORT_LIVED = ("paid_social", 1, 4)
EXPANSION = 0.05  # a month
CONTRACTION = 0.01
REACTIVATION = 0.2  # of the cancellations
DAYS_PER_MONTH = 30.4375
API_VERSION = "2025-06-30.basil"
_DAY_S = 86_400
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TYPES = {
    "subscription.started": "customer.subscription.created",
    "subscription.changed": "customer.subscription.updated",
    "subscription.canceled": "customer.subscription.deleted",
}


@dataclass(frozen=True)
class BillingPlant:
    """What the economics reads should find, in the API's terms."""

    fast_payback: str  # the channel whose new customers pay their acquisition cost back fastest
    never_pays_back: str  # the channel whose customers churn before paying it back
    churn_cohort: str  # YYYY-MM: the cohort whose renewals mostly fail
    gross_margin: float


@dataclass(frozen=True)
class Account:
    customer: str
    start: datetime
    seats: int
    yearly: bool
    channel: str | None = None  # first touch; None for the installed base
    deal_id: str | None = None
    contact_id: str | None = None
    lifetime: int | None = None  # the month it cancels in (SHORT_LIVED)
    launch: bool = False  # of the launch-offer cohort
    renews: bool = True  # at the end of its first year


def plant(org: Organisation) -> BillingPlant:
    # Months of a customer's MRR the channel's spend per customer costs (the model's expectations).
    def months_of_mrr(name: str) -> float:
        c = next(c for c in CHANNELS if c.name == name)
        return c.cost_per_lead / (c.lead_to_won * c.amount_median / 12)

    names = [c.name for c in org.channels]
    return BillingPlant(
        fast_payback=min(names, key=months_of_mrr),
        never_pays_back=max(names, key=months_of_mrr),
        churn_cohort=f"{launch_month(org):%Y-%m}",
        gross_margin=GROSS_MARGIN,
    )


def launch_month(org: Organisation) -> date:
    day = org.end.date() - timedelta(days=LAUNCH_BEFORE_END_DAYS)
    return day.replace(day=1)


def settings_body() -> dict[str, Any]:
    """The body of `PUT /v1/economics/settings`."""
    return {"gross_margin": GROSS_MARGIN}


def with_billing(org: Organisation, events: Iterable[DemoEvent]) -> list[DemoEvent]:
    """`events`, then the billing's Stripe events."""
    events = list(events)
    return events + _Billing(org).run(events)


def stripe_body(e: DemoEvent) -> dict[str, Any]:
    """The Stripe event object a billing event is sent as."""
    body: dict[str, Any] = e.extra["stripe"]
    return body


class _Billing:
    def __init__(self, org: Organisation) -> None:
        self.org = org
        self.rng = random.Random(f"salesloop-demo-billing:{org.seed}")
        self.seq = 0

    def _id(self, prefix: str, length: int = 14) -> str:
        """A Stripe-looking id, unique within the organisation and apart from other organisations'."""
        self.seq += 1
        digest = hashlib.sha256(f"salesloop-demo-stripe:{self.org.namespace}:{self.seq}".encode()).digest()
        number, chars = int.from_bytes(digest, "big"), []
        for _ in range(length):
            number, digit = divmod(number, 62)
            chars.append(_BASE62[digit])
        return f"{prefix}_{''.join(chars)}"

    def run(self, events: list[DemoEvent]) -> list[DemoEvent]:
        out: list[DemoEvent] = []
        for account in [*self._installed_base(), *self._won(events)]:
            out.extend(self._life(account))
        return out

    def _won(self, events: list[DemoEvent]) -> Iterator[Account]:
        won = sorted(
            (e for e in events if e.type == "deal.won" and e.deal_id is not None),
            key=lambda e: (e.occurred_at, e.deal_id or ""),
        )
        for deal in won:
            start = _whole(deal.occurred_at + timedelta(seconds=self.rng.randint(600, 2 * _DAY_S)))
            seats = max(1, round((deal.amount or 0) / 12 / SEAT_PRICE))
            yearly = self.rng.random() < YEARLY_SHARE
            customer = self._id("cus")
            short_lived, low, high = SHORT_LIVED
            lifetime = self.rng.randint(low, high) if deal.channel == short_lived else None
            if start < self.org.end:
                yield Account(
                    customer, start, seats, yearly and lifetime is None, deal.channel, deal.deal_id,
                    deal.contact_id, lifetime,
                )  # fmt: skip

    def _installed_base(self) -> Iterator[Account]:
        rng, org = self.rng, self.org
        team = sum(1 for r in org.reps if r.cohort != "wave")
        first = datetime.combine(org.start, datetime.min.time(), tzinfo=UTC) - timedelta(days=INSTALLED_DAYS)
        for _ in range(INSTALLED_PER_REP * team):
            start = _whole(first + timedelta(seconds=rng.randint(0, INSTALLED_DAYS * _DAY_S - 1)))
            yield Account(self._id("cus"), start, _seats(rng), rng.random() < YEARLY_SHARE)
        month = launch_month(org)
        days = ((month + timedelta(days=32)).replace(day=1) - month).days
        opened = datetime.combine(month, datetime.min.time(), tzinfo=UTC)
        size = math.ceil(LAUNCH_PER_REP * team)
        leaving = round(RENEWAL_LOSS * size)  # exactly: the spike does not depend on luck
        renews = [False] * leaving + [True] * (size - leaving)
        rng.shuffle(renews)
        for renewing in renews:
            start = _whole(opened + timedelta(seconds=rng.randint(0, days * _DAY_S - 1)))
            yield Account(self._id("cus"), start, _seats(rng), yearly=True, launch=True, renews=renewing)

    def _life(self, a: Account) -> Iterator[DemoEvent]:
        """The account's subscription events: its start, then a draw a month until it cancels."""
        rng, subscription, seats = self.rng, (self._id("sub"), self._id("si")), a.seats
        yield self._event("subscription.started", a.start, a, subscription, seats)
        for month in itertools.count(1):
            at = _whole(a.start + timedelta(days=month * DAYS_PER_MONTH, seconds=rng.randint(0, 6 * 3600)))
            if at >= self.org.end:
                return
            roll, renewal = rng.random(), month % 12 == 0
            if a.lifetime is not None:
                churn = 1.0 if month == a.lifetime else 0.0
            elif a.launch and month == 12:
                churn = 0.0 if a.renews else 1.0
            elif a.yearly:
                churn = 1 - (1 - CHURN[a.channel]) ** 12 if renewal else 0.0
            else:
                churn = CHURN[a.channel]
            if roll < churn:
                yield self._event("subscription.canceled", at, a, subscription, seats)
                yield from self._comeback(a, at, seats)
                return
            if roll < churn + EXPANSION:
                seats += max(1, round(seats * rng.uniform(0.1, 0.4)))
            elif roll < churn + EXPANSION + CONTRACTION and seats > 1:
                seats -= max(1, round(seats * rng.uniform(0.1, 0.3)))
            else:
                continue
            yield self._event("subscription.changed", at, a, subscription, seats)

    def _comeback(self, a: Account, canceled: datetime, seats: int) -> Iterator[DemoEvent]:
        back = _whole(canceled + timedelta(seconds=self.rng.randint(20 * _DAY_S, 60 * _DAY_S)))
        if self.rng.random() < REACTIVATION and back < self.org.end:
            yield self._event("subscription.started", back, a, (self._id("sub"), self._id("si")), seats)

    def _event(
        self, type_: str, at: datetime, a: Account, subscription: tuple[str, str], seats: int
    ) -> DemoEvent:
        """`type_` of the subscription (its id and its one item's) with `seats` after the event."""
        canceled = type_ == "subscription.canceled"
        body = stripe_event(self._id("evt", 24), _TYPES[type_], at, a, *subscription, seats, canceled)
        return DemoEvent(
            f"stripe:{body['id']}", type_, at, "stripe", contact_id=a.contact_id, account_id=a.customer,
            mrr=0 if canceled else seats * SEAT_PRICE, extra={"stripe": body},
        )  # fmt: skip


def stripe_event(
    event_id: str,
    type_: str,
    at: datetime,
    a: Account,
    subscription: str,
    item: str,
    seats: int,
    canceled: bool,
) -> dict[str, Any]:
    """A Stripe event object whose `data.object` is the subscription after the event."""
    created, started = int(at.timestamp()), int(a.start.timestamp())
    interval = "year" if a.yearly else "month"
    unit = SEAT_PRICE * 100 * (12 if a.yearly else 1)  # in cents
    price = {
        "id": f"price_demo_seat_{interval}ly",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "currency": CURRENCY,
        "livemode": False,
        "lookup_key": f"seat_{interval}ly",
        "product": "prod_demo_seats",
        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring",
        "unit_amount": unit,
        "unit_amount_decimal": str(unit),
    }
    items = [{"id": item, "object": "subscription_item", "price": price, "quantity": seats}]
    metadata = {"contact_id": a.contact_id, "deal_id": a.deal_id}
    obj = {
        "id": subscription,
        "object": "subscription",
        "created": started,
        "start_date": started,
        "billing_cycle_anchor": started,
        "cancel_at_period_end": False,
        "canceled_at": created if canceled else None,
        "ended_at": created if canceled else None,
        "collection_method": "charge_automatically",
        "currency": CURRENCY,
        "customer": a.customer,
        "items": {"object": "list", "data": items, "has_more": False, "total_count": 1},
        "livemode": False,
        "metadata": {k: v for k, v in metadata.items() if v is not None},
        "status": "canceled" if canceled else "active",
    }
    return {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }


def _seats(rng: random.Random) -> int:
    return max(1, round(rng.lognormvariate(math.log(10), 0.4)))


def _whole(moment: datetime) -> datetime:
    """To the second: Stripe's `created` is whole Unix seconds."""
    return moment.replace(microsecond=0)
