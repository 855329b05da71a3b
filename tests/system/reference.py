"""An independent, deliberately naive computation of SPEC 5.1 metrics from raw events.

It shares no code with the aggregator or the API: the system tests compare the two.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

TYPES = [
    ("call.completed", 40),
    ("email.sent", 25),
    ("email.replied", 6),
    ("email.opened", 5),
    ("meeting.booked", 6),
    ("meeting.held", 4),
    ("meeting.no_show", 1),
    ("lead.created", 4),
    ("lead.qualified", 2),
    ("deal.created", 3),
    ("deal.stage_changed", 2),
    ("deal.won", 2),
    ("deal.lost", 2),
]
CHANNELS = ["organic_search", "paid_search", "referral", "outbound", "events"]


@dataclass(frozen=True)
class Org:
    reps: dict[str, str]  # rep_id -> timezone
    teams: dict[str, str]  # rep_id -> team
    quotas: dict[str, Decimal]


def make_events(n: int, org: Org, start: datetime, days: int, seed: int) -> list[dict[str, Any]]:
    """`n` distinct canonical events, timestamps spread over `days` and shuffled (out of order)."""
    rnd = random.Random(seed)
    kinds, weights = zip(*TYPES, strict=True)
    reps = sorted(org.reps)
    out = []
    for i in range(n):
        kind = rnd.choices(kinds, weights)[0]
        at = start + timedelta(seconds=rnd.uniform(0, days * 86400))
        offset = rnd.choice([0, -5, 2, 9])  # the same instant written with different UTC offsets
        local = at.astimezone(ZoneInfo("UTC")) + timedelta(hours=offset)
        stamp = local.replace(tzinfo=None).isoformat(timespec="seconds") + (
            "Z" if offset == 0 else f"{offset:+03d}:00"
        )
        e: dict[str, Any] = {
            "event_id": f"e-{seed}-{i}",
            "type": kind,
            "occurred_at": stamp,
            "rep_id": rnd.choice(reps),
            "contact_id": f"c{rnd.randrange(400)}",
        }
        if kind == "call.completed":
            e["direction"] = rnd.choice(["outbound", "outbound", "outbound", "inbound"])
            e["outcome"] = rnd.choice(["connected", "no_answer", "voicemail", "busy", "failed", "connected"])
            e["duration_s"] = rnd.randrange(0, 1800) if e["outcome"] == "connected" else rnd.randrange(0, 40)
            if rnd.random() < 0.6:
                rep_talk = rnd.randrange(0, 900)
                e["rep_talk_s"] = rep_talk
                e["buyer_talk_s"] = rnd.randrange(0, 900)
        elif kind == "lead.qualified":
            e["stage"] = rnd.choice(["mql", "sql"])
        elif kind in ("deal.won", "deal.created"):
            e["amount"] = f"{rnd.randrange(1000, 90000)}.{rnd.randrange(100):02d}"
            e["deal_id"] = f"d{i}"
        if rnd.random() < 0.5:
            e["channel"] = rnd.choice(CHANNELS)
        out.append(e)
    rnd.shuffle(out)
    return out


def local_day(stamp: str, tz: str) -> date:
    return datetime.fromisoformat(stamp).astimezone(ZoneInfo(tz)).date()


def rep_metrics(
    events: list[dict[str, Any]], rep_ids: set[str], org: Org, frm: date, to: date
) -> dict[str, Any]:
    """SPEC 5.1 for a set of reps over rep-local days [frm, to]: rates from summed counts."""
    names = (
        "dials connects talk_time_s rep_talk buyer_talk emails_sent email_replies meetings_booked "
        "meetings_held deals_created deals_won deals_lost"
    )
    c: dict[str, Any] = dict.fromkeys(names.split(), 0)
    revenue = Decimal(0)
    for e in events:
        rep = e.get("rep_id")
        if rep not in rep_ids or not frm <= local_day(e["occurred_at"], org.reps[rep]) <= to:
            continue
        t = e["type"]
        if t == "call.completed":
            if e["direction"] == "outbound":
                c["dials"] += 1
                if e["outcome"] == "connected":
                    c["connects"] += 1
            if e["outcome"] == "connected":
                c["talk_time_s"] += e["duration_s"]
            if "rep_talk_s" in e and "buyer_talk_s" in e:
                c["rep_talk"] += e["rep_talk_s"]
                c["buyer_talk"] += e["buyer_talk_s"]
        elif t == "email.sent":
            c["emails_sent"] += 1
        elif t == "email.replied":
            c["email_replies"] += 1
        elif t == "meeting.booked":
            c["meetings_booked"] += 1
        elif t == "meeting.held":
            c["meetings_held"] += 1
        elif t == "deal.created":
            c["deals_created"] += 1
        elif t == "deal.won":
            c["deals_won"] += 1
            revenue += Decimal(e.get("amount", "0"))
        elif t == "deal.lost":
            c["deals_lost"] += 1

    def rate(a: float, b: float) -> float | None:
        return None if b == 0 else a / b

    quota = sum((org.quotas.get(r, Decimal(0)) for r in rep_ids), Decimal(0))
    months = ((to - frm).days + 1) / (365.25 / 12)
    return {
        "dials": c["dials"],
        "connects": c["connects"],
        "connect_rate": rate(c["connects"], c["dials"]),
        "talk_time_s": c["talk_time_s"],
        "talk_ratio": rate(c["rep_talk"], c["rep_talk"] + c["buyer_talk"]),
        "emails_sent": c["emails_sent"],
        "email_replies": c["email_replies"],
        "reply_rate": rate(c["email_replies"], c["emails_sent"]),
        "meetings_booked": c["meetings_booked"],
        "meetings_held": c["meetings_held"],
        "meeting_rate": rate(c["meetings_booked"], c["connects"]),
        "show_rate": rate(c["meetings_held"], c["meetings_booked"]),
        "deals_created": c["deals_created"],
        "deals_won": c["deals_won"],
        "deals_lost": c["deals_lost"],
        "win_rate": rate(c["deals_won"], c["deals_won"] + c["deals_lost"]),
        "revenue_won": float(revenue),
        "avg_deal_size": rate(float(revenue), c["deals_won"]),
        "quota_attainment": None if quota == 0 else float(revenue) / (float(quota) * months),
    }


def assert_metrics_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name, value in want.items():
        actual = got[name]
        if value is None:
            assert actual is None, f"{name}: want null, got {actual}"
        elif isinstance(value, int):
            assert actual == value, f"{name}: want {value}, got {actual}"
        else:
            assert actual is not None, f"{name}: want {value}, got null"
            assert abs(float(actual) - value) <= 1e-6 * max(1.0, abs(value)), (
                f"{name}: want {value}, got {actual}"
            )


def utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)
