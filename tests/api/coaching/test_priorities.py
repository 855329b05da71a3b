"""Coaching priorities (SPEC 5.9) on small organisations worked out by hand: the practical-significance
cut, impact ranking against z ranking, every funnel metric's monthly impact followed through the
funnel step by step, and the funnel's fallbacks (the peers' median, then 0)."""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator import archive_partitions
from services.api.coaching.priorities import FUNNEL_METRICS
from services.api.coaching.service import CoachingRep, Observation, RepCoaching, coach_scope
from services.api.coaching.stats import against
from services.core.models import Event, Rep, RepDaily
from tests.api.factories import RollupFactory, bearer
from tests.factories import TenantCtx, TenantFactory

SCALE = 1.4826
MONTH = 30.4375
SPREAD = (0.9, 0.95, 1.0, 1.05, 1.1)  # five peers around a median: MAD = 5 % of it

# A rep's whole funnel over a 30-day window, as the peers' median has it too. Counts are the
# denominators (samples) the rates are taken over.
FUNNEL = {
    "dials": 800.0,
    "connect_rate": 0.25,  # over 800 dials: 200 connects
    "meeting_rate": 0.2,  # over 200 connects: 40 meetings booked
    "meetings_booked": 40.0,
    "show_rate": 0.75,  # over 40 booked: 30 held
    "deals_per_held": 0.5,  # over 30 held: 15 deals created
    "win_rate": 0.5,  # over 24 decided: 12 won
    "avg_deal_size": 10_000.0,  # over 12 won
    "emails_sent": 500.0,
    "reply_rate": 0.04,  # over 500 emails: 20 replies
}
SAMPLES = {
    "connect_rate": 800,
    "meeting_rate": 200,
    "show_rate": 40,
    "deals_per_held": 30,
    "win_rate": 24,
    "avg_deal_size": 12,
    "reply_rate": 500,
}


def observed(
    values: Mapping[str, float | None], samples: dict[str, int] | None = None
) -> dict[str, Observation]:
    samples = {**SAMPLES, **(samples or {})}
    return {name: Observation(v, samples.get(name)) for name, v in values.items()}


def peers(values: Mapping[str, float | None] = FUNNEL) -> list[CoachingRep]:
    return [
        CoachingRep(f"p{i}", "east", observed({n: None if v is None else v * k for n, v in values.items()}))
        for i, k in enumerate(SPREAD)
    ]


def coach(
    target: Mapping[str, float | None], *, samples: dict[str, int] | None = None, days: int = 30
) -> RepCoaching:
    reps = [CoachingRep("t", "east", observed(target, samples)), *peers()]
    return coach_scope(reps, min_sample=10, days=days)[0]


def z_at(share: float) -> float:
    """The z of a rep at `share` x the peers' median (their MAD is 5 % of it)."""
    return (share - 1) / (SCALE * 0.05)


# --- the practical-significance cut ---------------------------------------------------------------


def test_a_rep_eight_percent_below_with_a_large_z_from_a_tiny_mad_has_no_priority() -> None:
    # connect rate peers .25 +- a and +- 2a: median .25, MAD a; a chosen so that 8 % below is z -3.4
    a = 0.08 * 0.25 / (SCALE * 3.4)
    rates = (0.25 - 2 * a, 0.25 - a, 0.25, 0.25 + a, 0.25 + 2 * a)
    reps = [CoachingRep(f"p{i}", "east", {"connect_rate": Observation(r, 400)}) for i, r in enumerate(rates)]
    close = CoachingRep("close", "east", {"connect_rate": Observation(0.23, 400)})
    far = CoachingRep("far", "east", {"connect_rate": Observation(0.2, 400)})
    got = {rep.rep_id: coach_scope([rep, *reps])[0] for rep in (close, far)}
    standing = got["close"].metrics["connect_rate"]
    assert standing.gap_pct == pytest.approx(-0.08)
    assert standing.z == pytest.approx(-3.4)
    assert got["close"].focus == ("connect_rate",)  # focus is z alone, as SPEC 5.2 has it
    assert got["close"].priorities == ()  # but 8 % is no gap worth a manager's time
    # 20 % below is: a priority, with the standing's numbers
    [p] = got["far"].priorities
    assert (p.metric, p.value, p.z) == ("connect_rate", 0.2, got["far"].metrics["connect_rate"].z)
    assert p.peer_median == pytest.approx(0.25)
    assert p.gap_pct == pytest.approx(-0.2)


# --- impact ranking differs from z ranking ----------------------------------------------------------


def test_impact_ranks_a_costly_gap_before_a_larger_z_on_a_metric_worth_little() -> None:
    # 300 emails fewer than the peers (z -8.1), but one email in 25 is answered: 12 replies. The
    # connect rate 12 % below (z -1.6) loses 24 connects, and every connect feeds the whole funnel.
    target = {**FUNNEL, "emails_sent": 200.0, "connect_rate": 0.22}
    t = coach(target, samples={"reply_rate": 200})
    assert t.metrics["emails_sent"].z == pytest.approx(z_at(0.4))  # -8.09
    assert t.metrics["connect_rate"].z == pytest.approx(z_at(0.88))  # -1.62
    assert t.focus == ("emails_sent", "connect_rate")

    # One connect or reply: 0.2 meetings x 0.75 shows x 0.5 deals x 0.5 wins x 10,000 = 375.
    per_connect = 0.2 * 0.75 * 0.5 * 0.5 * 10_000
    connect_impact = 800 * (0.25 - 0.22) * per_connect / (30 / MONTH)  # ~ 9,131 a month
    email_impact = (500 - 200) * 0.04 * per_connect / (30 / MONTH)  # ~ 4,566 a month
    assert [p.metric for p in t.priorities] == ["connect_rate", "emails_sent"]
    assert t.priorities[0].impact_monthly == pytest.approx(connect_impact)
    assert t.priorities[1].impact_monthly == pytest.approx(email_impact)


def test_a_metric_without_a_funnel_path_ranks_after_those_with_one() -> None:
    # Talking far too much (z +8.1) has no impact: it comes after a smaller funnel gap (z -2.7).
    target = {**FUNNEL, "win_rate": 0.4, "talk_ratio": 0.8}
    reps = [
        CoachingRep("t", "east", observed(target, {"talk_ratio": 50})),
        *(
            CoachingRep(r.rep_id, "east", {**r.metrics, "talk_ratio": Observation(0.5 * k, 50)})
            for r, k in zip(peers(), SPREAD, strict=True)
        ),
    ]
    t = coach_scope(reps, min_sample=10)[0]
    assert t.metrics["talk_ratio"].z == pytest.approx(0.3 / (SCALE * 0.025))
    assert t.focus == ("talk_ratio", "win_rate")
    assert [p.metric for p in t.priorities] == ["win_rate", "talk_ratio"]
    assert t.priorities[1].impact_monthly is None
    # 24 decided deals x 0.1 more of them won x 10,000 a deal
    assert t.priorities[0].impact_monthly == pytest.approx(24 * 0.1 * 10_000 / (30 / MONTH))


def test_equal_impacts_rank_by_z() -> None:
    # No deal is ever won (and the peers win none either): every impact is 0; the larger gap first.
    nothing = {**FUNNEL, "win_rate": 0.0}
    reps = [
        CoachingRep("t", "east", observed({**nothing, "dials": 560.0, "connect_rate": 0.15})),
        *peers(nothing),
    ]
    t = coach_scope(reps, min_sample=10)[0]
    assert [(p.metric, p.impact_monthly) for p in t.priorities] == [("connect_rate", 0.0), ("dials", 0.0)]
    assert t.priorities[0].z == pytest.approx(z_at(0.6))
    assert t.priorities[1].z == pytest.approx(z_at(0.7))


# --- every funnel metric's impact, followed through the funnel ------------------------------------


def revenue_of(funnel: dict[str, float], extra: dict[str, float]) -> float:
    """Revenue from extra dials, connects, emails, replies, meetings booked, meetings held, wins and
    deal size (whatever `extra` gives), each step turned into the next at the rep's own rates."""
    connects = extra.get("dials", 0.0) * funnel["connect_rate"] + extra.get("connects", 0.0)
    replies = extra.get("emails", 0.0) * funnel["reply_rate"] + extra.get("replies", 0.0)
    booked = (connects + replies) * funnel["meeting_rate"] + extra.get("booked", 0.0)
    held = booked * funnel["show_rate"] + extra.get("held", 0.0)
    deals = held * funnel["deals_per_held"]
    wins = deals * funnel["win_rate"] + extra.get("wins", 0.0)
    won_before = SAMPLES["avg_deal_size"]
    return wins * funnel["avg_deal_size"] + won_before * extra.get("size", 0.0)


@pytest.mark.parametrize("metric", FUNNEL_METRICS)
@pytest.mark.parametrize("days", [30, 91])
def test_impact_monthly_of_each_funnel_metric(metric: str, days: int) -> None:
    target = {**FUNNEL, metric: FUNNEL[metric] * 0.6}  # 40 % below the peers on this metric only
    t = coach(target, days=days)
    gap = FUNNEL[metric] * 0.4
    extra = {
        "dials": {"dials": gap},
        "connect_rate": {"connects": 800 * gap},
        "emails_sent": {"emails": gap},
        "reply_rate": {"replies": 500 * gap},
        "meeting_rate": {"booked": 200 * gap},
        "meetings_booked": {"booked": gap},
        "show_rate": {"held": 40 * gap},
        "win_rate": {"wins": 24 * gap},
        "avg_deal_size": {"size": gap},
    }[metric]
    want = revenue_of(target, extra) / (days / MONTH)
    [p] = t.priorities
    assert p.metric == metric
    assert p.z == pytest.approx(z_at(0.6))
    assert p.gap_pct == pytest.approx(-0.4)
    assert p.value == pytest.approx(target[metric])
    assert p.peer_median == pytest.approx(FUNNEL[metric])
    assert p.impact_monthly == pytest.approx(want, rel=1e-12)
    assert want > 0


def test_a_factor_the_rep_lacks_is_the_peers_median_and_zero_when_they_lack_it_too() -> None:
    # No meeting booked: the rep's show rate is null, so a connect is valued with the peers' .75.
    # Deals per held meeting: no peer has held 10 meetings (min_sample), so that factor is 0.
    target = {**FUNNEL, "connect_rate": 0.15, "meetings_booked": 0.0, "show_rate": None}
    t = coach(target, samples={"show_rate": 0})
    impacts = {p.metric: p.impact_monthly for p in t.priorities}
    assert impacts["connect_rate"] == pytest.approx(
        800 * 0.1 * 0.2 * 0.75 * 0.5 * 0.5 * 10_000 / (30 / MONTH)
    )
    assert impacts["meetings_booked"] == pytest.approx(40 * 0.75 * 0.5 * 0.5 * 10_000 / (30 / MONTH))
    lacking = {**target, "deals_per_held": None}
    reps = [CoachingRep("t", "east", observed(lacking, {"show_rate": 0, "deals_per_held": 0}))]
    reps += [
        CoachingRep(r.rep_id, "east", {**r.metrics, "deals_per_held": Observation(0.5, 5)}) for r in peers()
    ]
    t = coach_scope(reps, min_sample=10)[0]
    assert [(p.metric, p.impact_monthly) for p in t.priorities] == [
        ("meetings_booked", 0.0),
        ("connect_rate", 0.0),
    ]


# --- the standing against a fixed set of peers -------------------------------------------------


@pytest.mark.parametrize("seed", range(30))
def test_standing_against_fixed_peers_is_the_leave_one_out_standing(seed: int) -> None:
    """`against` (tenure peers) gives the same numbers, to the bit, as the group's leave-one-out
    statistics give a rep whose peers are the same values."""
    rnd = random.Random(seed)
    values = [rnd.choice([0.1, 0.2, 0.25, 0.3, rnd.random()]) for _ in range(rnd.randint(0, 12))]
    mine = rnd.choice([0.2, 0.5, rnd.random()])
    scored = rnd.random() < 0.8
    reps = [CoachingRep("me", None, {"connect_rate": Observation(mine, 50 if scored else 5)})]
    reps += [CoachingRep(f"p{i}", None, {"connect_rate": Observation(v, 50)}) for i, v in enumerate(values)]
    want = coach_scope(reps)[0].metrics["connect_rate"]
    n, median, percentile, gap, z = against(mine, scored, np.array(values))
    got = [None if x != x else x for x in (median, percentile, gap, z)]
    assert n == want.peers
    assert got == [want.peer_median, want.percentile, want.gap_pct, want.z]


# --- through the API: tenure peers, proration and impacts from the rollups ---------------------------

OCT = {"from": "2026-10-01", "to": "2026-10-30"}
WINDOW = (date(2026, 10, 1), date(2026, 10, 30))
COUNTS = ("dials", "connects", "emails_sent", "email_replies", "meetings_booked", "meetings_held",
          "deals_created", "deals_won", "deals_lost", "revenue_won")  # fmt: skip
RATES = ("connect_rate", "meeting_rate", "show_rate", "reply_rate", "win_rate", "avg_deal_size")
ACTIVITIES = ("dials", "emails_sent", "meetings_booked")
# The coached metrics these rollups give values (no talk times, no transcripts), in answer order.
COACHED = (*RATES, *ACTIVITIES)
VOLUMES = ("dials", "emails_sent", "meetings_booked", "connects", "decided", "won")


Counted = dict[str, tuple[float | None, int | None]]  # metric -> (value, sample)


@dataclass(frozen=True)
class Hire:
    hired_at: date | None
    team: str
    month1: tuple[date, date] | None = None  # the first and last day of its month 1, worked out by hand
    left_at: date | None = None


HIRES = {
    "v1": Hire(date(2025, 1, 15), "east", (date(2025, 2, 15), date(2025, 3, 16))),
    "v2": Hire(date(2025, 3, 10), "east", (date(2025, 4, 10), date(2025, 5, 9))),
    "v3": Hire(date(2025, 6, 1), "east", (date(2025, 7, 1), date(2025, 7, 30))),
    "v4": Hire(date(2025, 11, 20), "east", (date(2025, 12, 20), date(2026, 1, 18))),
    "v5": Hire(date(2026, 2, 5), "west", (date(2026, 3, 5), date(2026, 4, 3))),
    "v6": Hire(date(2026, 5, 31), "west", (date(2026, 6, 30), date(2026, 7, 29))),  # 31 May + 1 month
    # In month 1 when the window starts (15 Sep - 14 Oct), and through it by the window's end.
    "straddler": Hire(date(2026, 8, 15), "west", (date(2026, 9, 15), date(2026, 10, 14))),
    "newbie": Hire(date(2026, 9, 1), "west"),  # month 1 is 1 - 31 October
    "joiner": Hire(date(2026, 10, 10), "east"),  # employed 21 of the window's 30 days
    "nohire": Hire(None, "east"),
    # Hired long before the tenant's first event (FIRST_EVENT): its ramp months have no numbers.
    "old": Hire(date(2020, 3, 2), "east"),
}
FIRST_EVENT = datetime(2024, 12, 1, 9, tzinfo=UTC)
# Left on 21 October: employed 20 of the window's days, and nobody's peer any more.
LEAVER = Hire(date(2025, 1, 1), "east", left_at=date(2026, 10, 21))


def day_rows() -> dict[tuple[str, date], dict[str, int]]:
    """Every rollup row of the organisation: a ramp month and an October for each rep, and rows just
    outside each month 1 that must not count."""
    rows: dict[tuple[str, date], dict[str, int]] = {}

    def add(rep: str, day: date, **counts: int) -> None:
        row = rows.setdefault((rep, day), dict.fromkeys(COUNTS, 0))
        for name, n in counts.items():
            row[name] += n

    for k, rep in enumerate(("v1", "v2", "v3", "v4", "v5", "v6", "straddler"), start=1):
        hire = HIRES[rep]
        assert hire.month1 is not None
        first, last = hire.month1
        add(rep, first, dials=100 + 10 * k, connects=20 + 3 * k, emails_sent=50, email_replies=3 + k // 2,
            meetings_booked=5 + k % 3, meetings_held=4, deals_created=2, deals_won=1, deals_lost=1,
            revenue_won=8000)  # fmt: skip
        add(rep, last, dials=50, connects=10 + k % 2, emails_sent=25 + k)
        add(rep, first - timedelta(days=1), dials=1000, connects=900)
        add(rep, last + timedelta(days=1), dials=1000, connects=900, emails_sent=500)
        won = 4 + k % 2
        add(rep, date(2026, 10, 20), dials=300 + 20 * k, connects=90 + 5 * k, emails_sent=200 + 7 * k,
            email_replies=20 + k, meetings_booked=20 + k, meetings_held=15 + k % 4, deals_created=8,
            deals_won=won, deals_lost=3 + k % 3, revenue_won=won * (12000 + 500 * k))  # fmt: skip
    add("newbie", date(2026, 10, 3), dials=90, connects=12, emails_sent=60, email_replies=2,
        meetings_booked=2, meetings_held=1, deals_created=1)  # fmt: skip
    add("joiner", date(2026, 10, 12), dials=84, connects=21, emails_sent=42, email_replies=4,
        meetings_booked=7, meetings_held=7, deals_created=7, deals_won=3, deals_lost=4,
        revenue_won=30000)  # fmt: skip
    add("nohire", date(2026, 10, 7), dials=400, connects=60, emails_sent=230, email_replies=25,
        meetings_booked=21, meetings_held=16, deals_created=9, deals_won=5, deals_lost=5,
        revenue_won=60000)  # fmt: skip
    add("old", date(2020, 4, 3), dials=5)  # a stray row of its month 1, before anything was sent
    add("old", date(2026, 10, 9), dials=380, connects=70, emails_sent=210, email_replies=22,
        meetings_booked=22, meetings_held=17, deals_created=9, deals_won=4, deals_lost=4,
        revenue_won=50000)  # fmt: skip
    add("leaver", date(2026, 10, 5), dials=60, connects=15, emails_sent=40, email_replies=4,
        meetings_booked=4, meetings_held=3, deals_created=2, deals_won=1, deals_lost=1,
        revenue_won=9000)  # fmt: skip
    return rows


ROWS = day_rows()


def summed(rep: str, first: date, last: date) -> dict[str, int]:
    return {
        c: sum(r[c] for (who, day), r in ROWS.items() if who == rep and first <= day <= last) for c in COUNTS
    }


def employed(rep: str, first: date, last: date) -> int:
    hire = HIRES.get(rep, LEAVER)
    until = min(last, hire.left_at - timedelta(days=1)) if hire.left_at else last
    return (until - max(first, hire.hired_at or first)).days + 1


def metrics_of(counts: dict[str, int], employed_days: int) -> Counted:
    """(value, sample) of every coached metric with a value here, activities prorated to 30 days."""

    def rate(num: float, den: int) -> float | None:
        return num / den if den else None

    c = counts
    whole = 30 / employed_days
    decided = c["deals_won"] + c["deals_lost"]
    return {
        "connect_rate": (rate(c["connects"], c["dials"]), c["dials"]),
        "meeting_rate": (rate(c["meetings_booked"], c["connects"]), c["connects"]),
        "show_rate": (rate(c["meetings_held"], c["meetings_booked"]), c["meetings_booked"]),
        "reply_rate": (rate(c["email_replies"], c["emails_sent"]), c["emails_sent"]),
        "win_rate": (rate(c["deals_won"], decided), decided),
        "avg_deal_size": (rate(c["revenue_won"], c["deals_won"]), c["deals_won"]),
        "deals_per_held": (rate(c["deals_created"], c["meetings_held"]), c["meetings_held"]),
        "dials": (c["dials"] * whole, None),
        "emails_sent": (c["emails_sent"] * whole, None),
        "meetings_booked": (c["meetings_booked"] * whole, None),
        # the funnel's volumes, scaled like the activities
        "connects": (c["connects"] * whole, None),
        "decided": (decided * whole, None),
        "won": (c["deals_won"] * whole, None),
    }


def october(rep: str) -> Counted:
    return metrics_of(summed(rep, *WINDOW), employed(rep, *WINDOW))


def month(rep: str, n: int) -> Counted:
    """The rep over its own month n (30 days from n months after its hire), n = 0 or 1."""
    hire = HIRES[rep]
    assert hire.hired_at is not None
    first = hire.hired_at if n == 0 else hire.month1[0]  # type: ignore[index]
    return metrics_of(summed(rep, first, first + timedelta(days=29)), 30)


def naive(mine: Counted, peers: list[Counted], metric: str, min_sample: int = 20) -> dict[str, Any]:
    def qualifies(m: Counted) -> bool:
        value, sample = m[metric]
        return value is not None and (metric in ACTIVITIES or (sample or 0) >= min_sample)

    value, sample = mine[metric]
    values = [v for p in peers if qualifies(p) and (v := p[metric][0]) is not None]
    out: dict[str, Any] = {"value": value, "sample": sample, "peers": len(values)}
    out |= {"peer_median": None, "percentile": None, "gap_pct": None, "z": None}
    if not values:
        return out
    median = out["peer_median"] = statistics.median(values)
    if value is None:
        return out
    out["percentile"] = (
        100 * (sum(v < value for v in values) + 0.5 * sum(v == value for v in values)) / len(values)
    )
    out["gap_pct"] = (value - median) / median if median else None
    mad = statistics.median(abs(v - median) for v in values)
    if qualifies(mine) and len(values) >= 5 and mad:
        out["z"] = (value - median) / (SCALE * mad)
    return out


def naive_priorities(mine: Counted, peers: list[Counted]) -> list[tuple[str, float]]:
    """(metric, impact_monthly) of the rep's priorities, every step of the funnel written out."""
    standing = {m: naive(mine, peers, m) for m in (*COACHED, "deals_per_held")}

    def f(name: str) -> float:
        own = mine[name][0]
        median = standing[name]["peer_median"]
        return own if own is not None else median if median is not None else 0.0

    def gap(name: str) -> float:
        median, own = standing[name]["peer_median"], mine[name][0]
        return float("nan") if median is None or own is None else float(median - own)

    volume = {name: float(mine[name][0] or 0.0) for name in VOLUMES}
    extra_connects = {
        "dials": gap("dials") * f("connect_rate"),
        "connect_rate": volume["dials"] * gap("connect_rate"),
        "emails_sent": gap("emails_sent") * f("reply_rate"),
        "reply_rate": volume["emails_sent"] * gap("reply_rate"),
    }
    extra_booked = {
        "meeting_rate": volume["connects"] * gap("meeting_rate"),
        "meetings_booked": gap("meetings_booked"),
    }
    revenue: dict[str, float] = {}
    for metric in COACHED:
        booked = extra_connects.get(metric, 0.0) * f("meeting_rate") + extra_booked.get(metric, 0.0)
        held = booked * f("show_rate") + (
            volume["meetings_booked"] * gap("show_rate") if metric == "show_rate" else 0
        )
        wins = held * f("deals_per_held") * f("win_rate")
        if metric == "win_rate":
            wins += volume["decided"] * gap("win_rate")
        revenue[metric] = wins * f("avg_deal_size")
        if metric == "avg_deal_size":
            revenue[metric] = volume["won"] * gap("avg_deal_size")
    candidates = [
        (-revenue[m] / (30 / MONTH), standing[m]["z"], i, m)
        for i, m in enumerate(COACHED)
        if standing[m]["z"] is not None and standing[m]["z"] <= -1 and abs(standing[m]["gap_pct"]) >= 0.1
    ]
    return [(m, -impact) for impact, _, _, m in sorted(candidates)[:2]]


async def add_reps(engine: AsyncEngine, tenant: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Rep).values(
                [
                    {
                        "tenant": tenant,
                        "rep_id": rep,
                        "team": h.team,
                        "hired_at": h.hired_at,
                        "left_at": h.left_at,
                        "timezone": "UTC",
                    }
                    for rep, h in {**HIRES, "leaver": LEAVER}.items()
                ]
            )
        )
        first = {"event_id": "first", "type": "lead.created", "occurred_at": FIRST_EVENT.isoformat()}
        # The archive is partitioned by month; the aggregator makes a month's partition when an
        # event of it arrives, so this row written directly needs its own.
        raw = await conn.get_raw_connection()
        await archive_partitions.ensure(raw.driver_connection, [archive_partitions.month_of(FIRST_EVENT)])
        await conn.execute(
            insert(Event).values(
                tenant=tenant,
                event_id="first",
                type="lead.created",
                occurred_at=FIRST_EVENT,
                received_at=FIRST_EVENT,
                source="api",
                payload=first,
            )
        )
        await conn.execute(
            insert(RepDaily).values(
                [
                    {"tenant": tenant, "rep_id": rep, "day": day, **counts}
                    for (rep, day), counts in ROWS.items()
                ]
            )
        )


@pytest.fixture(scope="module")
async def hires(tenants: TenantFactory, engine: AsyncEngine) -> TenantCtx:
    t = await tenants.create()
    await add_reps(engine, t.slug)
    await RollupFactory(engine).watermark(t.slug, datetime(2026, 10, 31, tzinfo=UTC))
    return t


async def read(client: httpx.AsyncClient, org: TenantCtx, path: str, **params: Any) -> Any:
    r = await client.get(path, params={**OCT, **params}, headers=bearer(org.api_key))
    assert r.status_code == 200, r.text
    return r.json()


def assert_standings(
    body: dict[str, Any], mine: dict[str, Any], peers: list[dict[str, Any]], where: str
) -> None:
    for metric in COACHED:
        want = naive(mine, peers, metric)
        got = body["metrics"][metric]
        for k, v in want.items():
            assert got[k] == (v if v is None else pytest.approx(v, rel=1e-9)), (where, metric, k, got, want)


def naive_focus(mine: Counted, peers: list[Counted]) -> list[str]:
    """SPEC 5.2's focus: at most two metrics with z <= -1, most negative first (none here is two-sided)."""
    scored = [(z, i, m) for i, m in enumerate(COACHED) if (z := naive(mine, peers, m)["z"]) is not None]
    return [m for z, _, m in sorted(scored) if z <= -1][:2]


def counted(rep: str) -> Counted:
    """The rep's October as SPEC 5.2 reads it: the counts as they are, whatever its days employed."""
    return metrics_of(summed(rep, *WINDOW), 30)


def everyone_but(rep: str) -> list[str]:
    """The other active reps of the tenant (the leaver has gone by now)."""
    return [r for r in HIRES if r != rep]


def assert_5_2(body: dict[str, Any], rep: str, peers: list[str]) -> None:
    """`metrics` and `focus` are SPEC 5.2's: against `peers`, nothing prorated."""
    others = [counted(r) for r in peers]
    assert_standings(body, counted(rep), others, rep)
    assert body["focus"] == naive_focus(counted(rep), others), rep


def assert_priorities(body: dict[str, Any], mine: Counted, peers: list[Counted]) -> list[str]:
    want = naive_priorities(mine, peers)
    assert [(p["metric"], p["impact_monthly"]) for p in body["priorities"]] == [
        (m, pytest.approx(i, rel=1e-9)) for m, i in want
    ]
    return [m for m, _ in want]


async def test_a_ramping_reps_priorities_are_against_its_tenure_peers_its_focus_against_everyone(
    client: httpx.AsyncClient, hires: TenantCtx
) -> None:
    body = await read(client, hires, "/v1/coaching/reps/newbie", ramp_months=3)
    assert (body["peer_group"], body["ramp_months"]) == ("tenure_month_1", 3)
    # Its tenure peers: everyone hired by 30 August (two months before the window's end), each over
    # its own month 1; the joiner, the rep without a hire date and the newbie itself are none of
    # them, nor is the rep hired in 2020: its month 1 has no numbers (nothing was sent before
    # December 2024), which is no reason to count it as zeros.
    tenure = [month(r, 1) for r in ("v1", "v2", "v3", "v4", "v5", "v6", "straddler")]
    priorities = assert_priorities(body, october("newbie"), tenure)
    # Its standings and focus are against every other active rep, its ramp notwithstanding.
    assert body["metrics"]["dials"]["peers"] == 10
    assert_5_2(body, "newbie", everyone_but("newbie"))
    assert (body["focus"], priorities) == (["reply_rate", "connect_rate"], ["connect_rate", "emails_sent"])
    # Against its tenure peers its focus would have been another: focus is not theirs.
    assert naive_focus(october("newbie"), tenure) != body["focus"]
    # Not ramping, its priorities are against the whole tenant too; its metrics and focus unmoved.
    tenant = await read(client, hires, "/v1/coaching/reps/newbie", ramp_months=1)
    assert tenant["peer_group"] == "tenant"
    assert (tenant["metrics"], tenant["focus"]) == (body["metrics"], body["focus"])
    assert_priorities(tenant, october("newbie"), [october(r) for r in everyone_but("newbie")])


async def test_a_rep_is_never_its_own_tenure_peer(client: httpx.AsyncClient, hires: TenantCtx) -> None:
    # The straddler lived through its month 1 (15 Sep - 14 Oct) by the window's end: a peer of the
    # newbie, but not of itself.
    body = await read(client, hires, "/v1/coaching/reps/straddler", ramp_months=2)
    assert body["peer_group"] == "tenure_month_1"
    tenure = [month(r, 1) for r in ("v1", "v2", "v3", "v4", "v5", "v6")]
    assert_priorities(body, october("straddler"), tenure)
    assert body["priorities"][0]["impact_monthly"] > 100_000
    assert_5_2(body, "straddler", everyone_but("straddler"))


async def test_fewer_than_five_tenure_peers_compare_with_the_whole_scope(
    client: httpx.AsyncClient, hires: TenantCtx
) -> None:
    # In team west the newbie has three tenure peers (v5, v6, the straddler): its team it is.
    body = await read(client, hires, "/v1/coaching/reps/newbie", ramp_months=3, scope="team")
    assert body["peer_group"] == "team"
    west = [r for r, h in HIRES.items() if h.team == "west" and r != "newbie"]
    assert_5_2(body, "newbie", west)
    assert_priorities(body, october("newbie"), [october(r) for r in west])


async def test_the_default_ramp_is_the_measured_one(client: httpx.AsyncClient, hires: TenantCtx) -> None:
    # No month of steady state is known here (no event was ever sent): the default of 3 months.
    body = await read(client, hires, "/v1/coaching/reps/newbie")
    assert (body["peer_group"], body["ramp_months"]) == ("tenure_month_1", 3)
    veteran = await read(client, hires, "/v1/coaching/reps/v6")
    assert (veteran["peer_group"], veteran["ramp_months"]) == ("tenant", 3)


async def test_a_rep_who_joined_mid_window_is_prorated_in_its_priorities_only(
    client: httpx.AsyncClient, hires: TenantCtx
) -> None:
    body = await read(client, hires, "/v1/coaching/reps/joiner", ramp_months=0)
    assert body["peer_group"] == "tenant"
    # Its standings and focus read its 84 dials, 42 emails and 7 meetings as they are.
    assert [body["metrics"][m]["value"] for m in ACTIVITIES] == [84, 42, 7]
    assert_5_2(body, "joiner", everyone_but("joiner"))
    assert body["focus"] == ["emails_sent", "meetings_booked"]
    # Prorated, its focus would have been another.
    prorated_peers = [october(r) for r in everyone_but("joiner")]
    assert naive_focus(october("joiner"), prorated_peers) == ["emails_sent", "dials"]
    # Its priorities read them over the 21 days from 10 October: 120 dials, 60 emails and 10
    # meetings a window.
    assert october("joiner")["dials"][0] == pytest.approx(120.0)
    assert assert_priorities(body, october("joiner"), prorated_peers) == ["dials", "meetings_booked"]
    assert [(p["metric"], p["value"]) for p in body["priorities"]] == [
        ("dials", pytest.approx(120.0)),
        ("meetings_booked", pytest.approx(10.0)),
    ]
    # It is every other rep's peer: at its counts in their standings, prorated in their priorities.
    nohire = await read(client, hires, "/v1/coaching/reps/nohire", ramp_months=0)
    assert_5_2(nohire, "nohire", everyone_but("nohire"))
    assert_priorities(nohire, october("nohire"), [october(r) for r in everyone_but("nohire")])
    # A rep who left on 21 October (60 dials in 20 days, 90 a window) is no peer of the others (the
    # standings of nohire above have every other rep but the leaver as peers).
    leaver = await read(client, hires, "/v1/coaching/reps/leaver", ramp_months=0)
    assert leaver["metrics"]["dials"]["value"] == 60
    assert_5_2(leaver, "leaver", list(HIRES))
    assert_priorities(leaver, october("leaver"), [october(r) for r in HIRES])
    # Ramping by default (month 0): priorities against everyone over their first 30 days, itself
    # prorated; standings and focus as before.
    ramping = await read(client, hires, "/v1/coaching/reps/joiner")
    assert ramping["peer_group"] == "tenure_month_0"
    assert (ramping["metrics"], ramping["focus"]) == (body["metrics"], body["focus"])
    first = [month(r, 0) for r in HIRES if r not in ("joiner", "nohire", "old")]
    assert_priorities(ramping, october("joiner"), first)


async def test_the_team_view_lists_each_reps_peer_group_focus_and_priorities(
    client: httpx.AsyncClient, hires: TenantCtx
) -> None:
    body = await read(client, hires, "/v1/coaching/team", ramp_months=3)
    assert (body["peer_group"], body["ramp_months"]) == ("tenant", 3)
    groups = {r["rep_id"]: r["peer_group"] for r in body["reps"]}
    assert groups == {**dict.fromkeys(HIRES, "tenant"), "newbie": "tenure_month_1",
                      "straddler": "tenure_month_1", "joiner": "tenure_month_0"}  # fmt: skip
    for entry in body["reps"]:
        rep = entry["rep_id"]
        alone = await read(client, hires, f"/v1/coaching/reps/{rep}", ramp_months=3)
        assert (entry["focus"], entry["priorities"]) == (alone["focus"], alone["priorities"]), rep
        assert entry["focus"] == naive_focus(counted(rep), [counted(r) for r in everyone_but(rep)]), rep
    newbie = next(r for r in body["reps"] if r["rep_id"] == "newbie")
    assert newbie["focus"] != [p["metric"] for p in newbie["priorities"]]
