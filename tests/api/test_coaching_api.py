"""Coaching (SPEC 5.2) end to end: an organisation posted through ingest, standings read back and
compared with medians, MADs, z-scores and percentiles worked out here."""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.org import Org, organisation
from tests.conftest import Services
from tests.factories import TenantFactory

OCT = {"from": "2026-10-01", "to": "2026-10-30"}
SCALE = 1.4826
RATES = ("connect_rate", "meeting_rate", "show_rate", "reply_rate", "win_rate", "talk_ratio", "avg_deal_size")
ACTIVITIES = ("dials", "emails_sent", "meetings_booked")
# Coached too (tests/api/coaching/test_conversation_coaching.py); no call here has a transcript.
TALK = (
    "rep_talk_share",
    "longest_monologue_s",
    "questions_per_call",
    "label_per_call",
    "calibrated_question_per_call",
)


@dataclass(frozen=True)
class Plan:
    """What a rep does in October: dials (the first `connects` connected), the share of talk time
    on every call (None: no talk times), emails sent and replies."""

    team: str
    dials: int = 0
    connects: int = 0
    talk: float | None = None
    emails: int = 0
    replies: int = 0
    active: bool = True
    timezone: str = "UTC"


PLANS = {
    "a": Plan("east", 40, 4, 0.40, 20, 1),
    "b": Plan("east", 40, 8, 0.47, 20, 4, timezone="Asia/Tokyo"),
    "c": Plan("east", 40, 10, 0.50, 20, 4),
    "d": Plan("east", 40, 12, 0.55, 20, 4),
    "e": Plan("east", 40, 14, 0.60, 20, 4),
    "f": Plan("east", 40, 16, 0.90, 20, 4),
    "g": Plan("east", 10, 5, 0.50),  # below min_sample: nobody's peer for rates
    "idle": Plan("east"),  # no activity at all
    "h": Plan("solo", 30, 3),  # a team of one, without talk times
    "gone": Plan("east", 100, 100, active=False),  # inactive: nobody's peer
}


def noon(day: int) -> datetime:
    return datetime(2026, 10, day, 12, tzinfo=UTC)


def plan_events(org: Org, rep: str, plan: Plan) -> None:
    for i in range(plan.dials):
        at = noon(2 + i % 27)
        if rep == "b" and i == 0:
            at = datetime(2026, 9, 30, 20, tzinfo=UTC)  # already 1 October in Tokyo: inside
        connected = i < plan.connects
        fields: dict[str, Any] = {
            "direction": "outbound",
            "outcome": "connected" if connected else "no_answer",
        }
        if connected:
            fields["duration_s"] = 60
        if plan.talk is not None:
            fields |= {"rep_talk_s": round(100 * plan.talk), "buyer_talk_s": round(100 * (1 - plan.talk))}
        org.event("call.completed", at, rep_id=rep, **fields)
    for i in range(plan.emails):
        org.event("email.sent", noon(3 + i % 20), rep_id=rep)
    for i in range(plan.replies):
        org.event("email.replied", noon(5 + i), rep_id=rep)


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    async with organisation(services, tenants, engine) as o:
        for rep, plan in PLANS.items():
            await o.rep(rep, team=plan.team, timezone=plan.timezone, active=plan.active)
        for rep, plan in PLANS.items():
            plan_events(o, rep, plan)
        # 31 October in Tokyo: outside the window for b (inside it if days were UTC).
        o.event(
            "call.completed",
            datetime(2026, 10, 30, 16, tzinfo=UTC),
            rep_id="b",
            direction="outbound",
            outcome="connected",
        )
        await o.flush()
        yield o


# --- an independent computation of SPEC 5.2 ------------------------------------------------------


def observed(plan: Plan) -> dict[str, tuple[float | None, int | None]]:
    """(value, sample) per coaching metric, from the plan's counts."""

    def rate(num: float, den: int) -> float | None:
        return num / den if den else None

    talk_calls = plan.dials if plan.talk is not None else 0
    rep_talk = talk_calls * round(100 * plan.talk) if plan.talk is not None else 0
    out: dict[str, tuple[float | None, int | None]] = {
        "connect_rate": (rate(plan.connects, plan.dials), plan.dials),
        "meeting_rate": (rate(0, plan.connects), plan.connects),
        "show_rate": (None, 0),
        "reply_rate": (rate(plan.replies, plan.emails), plan.emails),
        "win_rate": (None, 0),
        "talk_ratio": (rate(rep_talk, talk_calls * 100), talk_calls),
        "avg_deal_size": (None, 0),
        "dials": (float(plan.dials), None),
        "emails_sent": (float(plan.emails), None),
        "meetings_booked": (0.0, None),
    }
    return out


def naive_standing(rep: str, group: list[str], metric: str, min_sample: int) -> dict[str, Any]:
    def qualifies(r: str) -> bool:
        value, sample = observed(PLANS[r])[metric]
        return value is not None and (metric in ACTIVITIES or (sample or 0) >= min_sample)

    value, sample = observed(PLANS[rep])[metric]
    peers = [observed(PLANS[r])[metric][0] for r in group if r != rep and PLANS[r].active and qualifies(r)]
    values = [v for v in peers if v is not None]
    out: dict[str, Any] = {"value": value, "sample": sample, "peers": len(values)}
    out |= {"peer_median": None, "percentile": None, "gap_pct": None, "z": None}
    if not values:
        return out
    median = statistics.median(values)
    out["peer_median"] = median
    if value is None:
        return out
    below = sum(v < value for v in values)
    equal = sum(v == value for v in values)
    out["percentile"] = 100 * (below + equal / 2) / len(values)
    out["gap_pct"] = (value - median) / median if median else None
    if qualifies(rep) and len(values) >= 5:
        mad = statistics.median([abs(v - median) for v in values])
        out["z"] = (value - median) / (SCALE * mad) if mad else None
    return out


def naive_focus(standings: dict[str, dict[str, Any]]) -> list[str]:
    scored = []
    for i, metric in enumerate(RATES + ACTIVITIES):
        z = standings[metric]["z"]
        if z is not None:
            score = -abs(z) if metric == "talk_ratio" else z
            if score <= -1:
                scored.append((score, i, metric))
    return [m for _, _, m in sorted(scored)[:2]]


def group_of(rep: str, scope: str) -> list[str]:
    if scope == "tenant":
        return list(PLANS)
    return [r for r, p in PLANS.items() if p.team == PLANS[rep].team]


def assert_standing(got: dict[str, Any], want: dict[str, Any], where: Any) -> None:
    assert set(got) == set(want), where
    for k, v in want.items():
        assert got[k] == (v if v is None else pytest.approx(v, rel=1e-9)), (where, k, got, want)


# --- the tests -----------------------------------------------------------------------------------


async def test_rep_far_below_its_peers_by_hand(org: Org) -> None:
    body = await org.get("/v1/coaching/reps/a", scope="tenant", **OCT)
    assert (body["rep_id"], body["team"], body["scope"], body["min_sample"]) == ("a", "east", "tenant", 20)
    assert (body["from"], body["to"]) == ("2026-10-01", "2026-10-30")
    assert body["as_of"] is not None
    connect = body["metrics"]["connect_rate"]
    # peers h .10, b .20, c .25, d .30, e .35, f .40 (g has 10 dials < 20, "gone" is inactive, idle has
    # none): median .275; |x - .275| = .175 .075 .025 .025 .075 .125 -> MAD .075
    assert connect["value"] == pytest.approx(0.10)
    assert connect["sample"] == 40
    assert connect["peers"] == 6
    assert connect["peer_median"] == pytest.approx(0.275)
    assert connect["percentile"] == pytest.approx(100 * 0.5 / 6)  # h's .10 is equal: half counts
    assert connect["gap_pct"] == pytest.approx(-0.175 / 0.275)
    assert connect["z"] == pytest.approx(-0.175 / (SCALE * 0.075))
    talk = body["metrics"]["talk_ratio"]
    # peers b .47, c .50, d .55, e .60, f .90: median .55; deviations .08 .05 0 .05 .35 -> MAD .05
    assert talk["sample"] == 40
    assert talk["peers"] == 5
    assert talk["z"] == pytest.approx(-0.15 / (SCALE * 0.05))
    assert talk["percentile"] == 0.0
    # every peer replies at .20: MAD 0, so no z however far below a is
    reply = body["metrics"]["reply_rate"]
    assert (reply["value"], reply["peer_median"], reply["z"]) == (
        pytest.approx(0.05),
        pytest.approx(0.2),
        None,
    )
    assert body["focus"] == ["talk_ratio", "connect_rate"]  # -2.02 before -1.57


async def test_team_scope_compares_with_the_team_only(org: Org) -> None:
    body = await org.get("/v1/coaching/reps/a", scope="team", **OCT)
    connect = body["metrics"]["connect_rate"]
    # peers b .20 .. f .40 (h is in another team): median .30, MAD .05
    assert connect["peers"] == 5
    assert connect["peer_median"] == pytest.approx(0.30)
    assert connect["z"] == pytest.approx(-0.20 / (SCALE * 0.05))
    assert body["focus"] == ["connect_rate", "talk_ratio"]  # -2.70 before -2.02

    solo = await org.get("/v1/coaching/reps/h", scope="team", **OCT)  # a team of one
    assert {m["peers"] for m in solo["metrics"].values()} == {0}
    assert solo["metrics"]["connect_rate"]["value"] == pytest.approx(0.1)
    assert solo["metrics"]["connect_rate"]["z"] is None
    assert solo["focus"] == []


async def test_talking_too_much_is_a_focus_too(org: Org) -> None:
    f = await org.get("/v1/coaching/reps/f", scope="team", **OCT)
    # peers a .40 b .47 c .50 d .55 e .60: median .50, MAD .05: z = +5.4, far in the wrong direction
    assert f["metrics"]["talk_ratio"]["z"] == pytest.approx(0.40 / (SCALE * 0.05))
    assert f["focus"] == ["talk_ratio"]


async def test_min_sample_decides_who_is_a_peer(org: Org) -> None:
    body = await org.get("/v1/coaching/reps/a", scope="team", min_sample=5, **OCT)
    connect = body["metrics"]["connect_rate"]
    # g (10 dials, .50) now counts: .20 .25 .30 .35 .40 .50 -> median .325, MAD .075
    assert connect["peers"] == 6
    assert connect["peer_median"] == pytest.approx(0.325)
    assert connect["z"] == pytest.approx(-0.225 / (SCALE * 0.075))
    g = (await org.get("/v1/coaching/reps/g", scope="team", **OCT))["metrics"]["connect_rate"]
    assert (g["value"], g["sample"], g["z"]) == (pytest.approx(0.5), 10, None)  # below min_sample itself


async def test_a_rep_without_activity_has_null_rates_not_zero(org: Org) -> None:
    body = await org.get("/v1/coaching/reps/idle", **OCT)
    for metric in RATES:
        assert body["metrics"][metric]["value"] is None, metric
        assert body["metrics"][metric]["z"] is None, metric
    assert body["metrics"]["connect_rate"]["sample"] == 0
    assert body["metrics"]["dials"]["value"] == 0.0
    assert body["focus"] == []


@pytest.mark.parametrize("scope", ["tenant", "team"])
async def test_every_standing_of_every_rep_matches_the_naive_computation(org: Org, scope: str) -> None:
    for rep in PLANS:
        body = await org.get(f"/v1/coaching/reps/{rep}", scope=scope, **OCT)
        want = {m: naive_standing(rep, group_of(rep, scope), m, 20) for m in RATES + ACTIVITIES}
        assert set(body["metrics"]) == set(want) | set(TALK)
        assert {body["metrics"][m]["value"] for m in TALK} == {None}
        for metric, standing in want.items():
            assert_standing(body["metrics"][metric], standing, (scope, rep, metric))
        assert body["focus"] == naive_focus(want), (scope, rep)


@pytest.mark.parametrize("scope", ["tenant", "team"])
async def test_team_view_lists_every_active_rep_with_its_focus(org: Org, scope: str) -> None:
    body = await org.get("/v1/coaching/team", scope=scope, **OCT)
    assert (body["scope"], body["team"], body["from"], body["to"]) == (
        scope,
        None,
        "2026-10-01",
        "2026-10-30",
    )
    assert body["as_of"] is not None
    expected = []
    for rep in sorted(r for r, p in PLANS.items() if p.active):
        standings = {m: naive_standing(rep, group_of(rep, scope), m, 20) for m in RATES + ACTIVITIES}
        expected.append({"rep_id": rep, "team": PLANS[rep].team, "focus": naive_focus(standings)})
    assert [{k: r[k] for k in ("rep_id", "team", "focus")} for r in body["reps"]] == expected
    assert any(r["focus"] for r in expected)  # the comparison is not trivially empty


async def test_team_view_of_one_team(org: Org) -> None:
    tenant_wide = await org.get("/v1/coaching/team", scope="tenant", team="east", **OCT)
    assert [r["rep_id"] for r in tenant_wide["reps"]] == ["a", "b", "c", "d", "e", "f", "g", "idle"]
    a = next(r for r in tenant_wide["reps"] if r["rep_id"] == "a")
    assert a["focus"] == ["talk_ratio", "connect_rate"]  # peers from the whole tenant
    within = await org.get("/v1/coaching/team", scope="team", team="east", **OCT)
    assert next(r for r in within["reps"] if r["rep_id"] == "a")["focus"] == ["connect_rate", "talk_ratio"]
    solo = await org.get("/v1/coaching/team", scope="team", team="solo", **OCT)
    assert [(r["rep_id"], r["team"], r["focus"]) for r in solo["reps"]] == [("h", "solo", [])]


async def test_a_window_without_data(org: Org) -> None:
    body = await org.get("/v1/coaching/reps/a", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert body["focus"] == []
    assert body["metrics"]["connect_rate"] == {
        "value": None,
        "sample": 0,
        "peers": 0,
        "peer_median": None,
        "percentile": None,
        "gap_pct": None,
        "z": None,
    }
    # Activity metrics have no denominator: every active rep is a peer, all at 0.
    assert body["metrics"]["dials"]["peers"] == 8
    assert body["metrics"]["dials"]["percentile"] == 50.0
    team = await org.get("/v1/coaching/team", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert {r["rep_id"]: r["focus"] for r in team["reps"]} == {r: [] for r, p in PLANS.items() if p.active}


async def test_default_window_is_the_last_30_full_days_in_the_reps_timezone(org: Org) -> None:
    body = await org.get("/v1/coaching/reps/b")  # Asia/Tokyo
    yesterday = (datetime.now(UTC) + timedelta(hours=9)).date() - timedelta(days=1)
    assert body["to"] == str(yesterday)
    assert body["from"] == str(yesterday - timedelta(days=29))


async def test_refusals(org: Org) -> None:
    missing = await org.request("GET", "/v1/coaching/reps/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await org.request("GET", "/v1/coaching/team", params={"team": "nowhere"})).status_code == 404
    for params, field in [
        ({"scope": "company"}, "scope"),
        ({"min_sample": "-1"}, "min_sample"),
        ({"window": "30"}, "window"),
        ({"from": "2026-10-30", "to": "2026-10-01"}, "from"),
    ]:
        r = await org.request("GET", "/v1/coaching/reps/a", params=params)
        assert r.status_code == 422, (params, r.text)
        assert any(d["field"].endswith(field) for d in r.json()["error"]["details"]), r.text


def naive_priorities(standings: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """SPEC 5.9 on this organisation: nobody books a meeting, so every funnel metric's impact is 0
    (a connect is worth the rep's meeting rate of 0, or nothing where it has none and no peer has 20
    connects); talk_ratio has no funnel path. Gaps under 10 % are cut, equal impacts rank by z."""
    ranked = []
    for i, metric in enumerate(RATES + ACTIVITIES):
        s = standings[metric]
        if s["z"] is None or s["gap_pct"] is None or abs(s["gap_pct"]) < 0.1:
            continue
        score = -abs(s["z"]) if metric == "talk_ratio" else s["z"]
        if score <= -1:
            impact = None if metric == "talk_ratio" else 0.0
            ranked.append((impact is None, score, i, {"metric": metric, "impact_monthly": impact} | s))
    return [p for *_, p in sorted(ranked, key=lambda r: r[:3])[:2]]


@pytest.mark.parametrize("scope", ["tenant", "team"])
async def test_priorities_match_the_naive_computation(org: Org, scope: str) -> None:
    keys = ("value", "peer_median", "z", "gap_pct", "impact_monthly")
    team = await org.get("/v1/coaching/team", scope=scope, **OCT)
    assert (team["peer_group"], team["ramp_months"]) == (scope, 3)  # no hire dates: not measurable
    listed = {r["rep_id"]: r for r in team["reps"]}
    seen = 0
    for rep in PLANS:
        body = await org.get(f"/v1/coaching/reps/{rep}", scope=scope, **OCT)
        assert (body["peer_group"], body["ramp_months"]) == (scope, 3)
        standings = {m: naive_standing(rep, group_of(rep, scope), m, 20) for m in RATES + ACTIVITIES}
        want = naive_priorities(standings)
        got = body["priorities"]
        assert [p["metric"] for p in got] == [p["metric"] for p in want], (scope, rep)
        for g, w in zip(got, want, strict=True):
            assert set(g) == {"metric", *keys}
            assert_standing({k: g[k] for k in keys}, {k: w[k] for k in keys}, (scope, rep, w["metric"]))
        if PLANS[rep].active:
            assert listed[rep]["priorities"] == got
            assert listed[rep]["peer_group"] == scope
        seen += len(got)
    assert seen >= 3  # the comparison is not trivially empty
