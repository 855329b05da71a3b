"""The benchmark workload: a sales org of 200 reps over 30 days, as canonical events."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

TYPES = [
    ("call.completed", 40),
    ("email.sent", 30),
    ("email.replied", 6),
    ("meeting.booked", 6),
    ("meeting.held", 4),
    ("lead.created", 5),
    ("lead.qualified", 2),
    ("deal.created", 3),
    ("deal.won", 2),
    ("deal.lost", 2),
]
CHANNELS = [
    "organic_search",
    "paid_search",
    "paid_social",
    "referral",
    "direct",
    "events",
    "outbound",
    "partner",
]
START = datetime(2026, 9, 1, tzinfo=UTC)


def events(
    n: int, *, reps: int = 200, days: float = 30, seed: int = 7, start: datetime = START
) -> Iterator[dict[str, Any]]:
    """`n` distinct events whose times advance through the period with jitter (a realistic stream)."""
    rnd = random.Random(seed)
    kinds, weights = zip(*TYPES, strict=True)
    span = days * 86400
    for i in range(n):
        kind = rnd.choices(kinds, weights)[0]
        at = start + timedelta(seconds=max(0.0, span * i / n + rnd.uniform(-600, 600)))
        e: dict[str, Any] = {
            "event_id": f"ev-{seed}-{i}",
            "type": kind,
            "occurred_at": at.isoformat(timespec="milliseconds"),
            "rep_id": f"rep-{rnd.randrange(reps):04d}",
            "contact_id": f"c-{rnd.randrange(50_000)}",
            "channel": rnd.choice(CHANNELS),
        }
        if kind == "call.completed":
            e["direction"] = "outbound"
            e["outcome"] = rnd.choice(["connected", "no_answer", "voicemail"])
            e["duration_s"] = rnd.randrange(10, 1800)
            e["rep_talk_s"] = rnd.randrange(0, 900)
            e["buyer_talk_s"] = rnd.randrange(0, 900)
        elif kind == "lead.qualified":
            e["stage"] = rnd.choice(["mql", "sql"])
        elif kind == "deal.won":
            e["amount"] = f"{rnd.randrange(1000, 90000)}.00"
        yield e


def with_duplicates(items: list[dict[str, Any]], share: float, seed: int = 8) -> list[dict[str, Any]]:
    """Re-deliveries: `share` of the events again, a little later in the stream."""
    rnd = random.Random(seed)
    later: dict[int, list[dict[str, Any]]] = {}  # position in `items` -> copies delivered right after it
    for _ in range(int(len(items) * share)):
        j = rnd.randrange(len(items))
        later.setdefault(min(len(items) - 1, j + rnd.randrange(1, 500)), []).append(items[j])
    out = []
    for i, item in enumerate(items):
        out.append(item)
        out.extend(later.get(i, ()))
    return out


# Monthly prices of the billing history's plans, and how many seats an account takes.
PLAN_MRR = (49, 99, 249, 499, 999)


def subscriptions(
    accounts: int, *, start: datetime, end: datetime, contacts: int, seed: int = 11
) -> Iterator[dict[str, Any]]:
    """Canonical `subscription.*` events of `accounts` billing accounts started between `start` and
    `end`: each month an account may change plan or seats (about 1 in 12) or cancel (1 in 30); a
    cancelled one may come back months later. `mrr` is the account's whole MRR after the event and
    `contact_id` one of `c0` .. `c{contacts - 1}` (the lead that attributes its channel)."""
    rnd = random.Random(seed)
    span = (end - start).total_seconds()
    for i in range(accounts):
        account, contact = f"acct-{i:05d}", f"c{rnd.randrange(contacts)}"
        at = start + timedelta(seconds=rnd.uniform(0, span))
        kind, mrr, n = "subscription.started", rnd.choice(PLAN_MRR) * rnd.randint(1, 5), 0
        while at < end:
            yield {
                "event_id": f"sub-{seed}-{i}-{n}", "type": kind, "occurred_at": at.isoformat(),
                "account_id": account, "mrr": str(mrr), "contact_id": contact,
            }  # fmt: skip
            n += 1
            roll = rnd.random()
            if kind == "subscription.canceled":
                if roll > 0.2:
                    break
                kind, mrr = "subscription.started", rnd.choice(PLAN_MRR) * rnd.randint(1, 5)
                at += timedelta(days=rnd.randint(60, 240))
                continue
            months = 1
            while rnd.random() > 1 / 12 + 1 / 30:  # months until the next change or cancellation
                months += 1
            at += timedelta(days=30.4375 * months, seconds=rnd.randint(-43_200, 43_200))
            if rnd.random() < (1 / 30) / (1 / 12 + 1 / 30):
                kind, mrr = "subscription.canceled", 0
            else:
                kind, mrr = "subscription.changed", rnd.choice(PLAN_MRR) * rnd.randint(1, 5)
