"""Coaching on the conversation metrics (SPEC 5.2 + 5.7): each rep's calls written as the conversation
fold stores them, standings and focus read back and compared with medians, MADs, z-scores,
percentiles and gaps worked out here from the calls; talk share counts in either direction, a longer
monologue is worse, and `calls_analysed` is the sample `min_sample` applies to."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.coaching.service import CoachingRep, Observation, coach_scope
from tests.api.factories import AnalysedCall, ConversationFactory, RollupFactory, bearer
from tests.factories import TenantCtx, TenantFactory

OCT = {"from": "2026-10-01", "to": "2026-10-30"}
SCALE = 1.4826
# In the order of the coaching answer, with how focus reads each z.
TALK = (
    "rep_talk_share",
    "longest_monologue_s",
    "questions_per_call",
    "label_per_call",
    "calibrated_question_per_call",
)
TWO_SIDED, HIGHER_IS_WORSE = {"rep_talk_share"}, {"longest_monologue_s"}


@dataclass(frozen=True)
class Talk:
    """A rep's October calls: `calls` of them, with talk share, longest monologue and rep questions
    around these values, a label on every `label_every`-th call and a calibrated question on every
    `calibrated_every`-th (0: never)."""

    calls: int
    share: float
    monologue: float
    questions: int
    label_every: int = 2
    calibrated_every: int = 2
    active: bool = True


TALKS = {
    "a": Talk(21, 0.45, 60.0, 8),
    "b": Talk(21, 0.50, 70.0, 9, label_every=3),
    "c": Talk(24, 0.55, 80.0, 10, calibrated_every=3),
    "d": Talk(21, 0.48, 65.0, 7),
    "e": Talk(21, 0.52, 75.0, 11, label_every=1),
    "talker": Talk(21, 0.85, 72.0, 9),
    "lecturer": Talk(21, 0.50, 300.0, 8),
    "quiet": Talk(21, 0.20, 20.0, 2, label_every=0, calibrated_every=0),
    "few": Talk(6, 0.90, 400.0, 0, label_every=0),  # below min_sample
    "none": Talk(0, 0.5, 60.0, 8),
    "gone": Talk(30, 0.99, 999.0, 0, active=False),  # nobody's peer
}


def calls_of(rep: str, talk: Talk) -> list[AnalysedCall]:
    out = []
    for i in range(talk.calls):
        wobble = i % 3 - 1  # -1, 0, 1: the values spread around the rep's own
        moments = []
        if talk.label_every and i % talk.label_every == 0:
            moments.append({"tactic": "label", "speaker": "rep", "start_s": 10.0, "text": "It seems like…"})
        if talk.calibrated_every and i % talk.calibrated_every == 0:
            moments.append(
                {"tactic": "calibrated_question", "speaker": "rep", "start_s": 20.0, "text": "How…?"}
            )
        day = date(2026, 10, 1 + i % 30)
        metrics = {
            "rep_talk_share": round(talk.share + 0.01 * wobble, 6),
            "longest_monologue_s": talk.monologue + 2.5 * wobble,
            "rep_questions": max(0, talk.questions + wobble),
            "longest_story_s": 30.0,
        }
        at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        out.append(AnalysedCall(f"{rep}-{i}", rep, day, occurred_at=at, metrics=metrics, moments=moments))
    return out


CALLS = {rep: calls_of(rep, talk) for rep, talk in TALKS.items()}


@pytest.fixture(scope="module")
async def org(tenants: TenantFactory, engine: AsyncEngine) -> TenantCtx:
    t = await tenants.create()
    rollups, talks = RollupFactory(engine), ConversationFactory(engine)
    for rep, talk in TALKS.items():
        await rollups.rep(t.slug, rep, team="east", active=talk.active)
        await talks.add(t.slug, *CALLS[rep])
    # A call outside the window changes nothing.
    await talks.add(t.slug, AnalysedCall("late", "a", date(2026, 10, 31), metrics={"rep_talk_share": 1.0}))
    await rollups.watermark(t.slug, datetime(2026, 10, 31, tzinfo=UTC))
    return t


async def get(client: httpx.AsyncClient, org: TenantCtx, path: str, **params: Any) -> Any:
    r = await client.get(path, params={**OCT, **params}, headers=bearer(org.api_key))
    assert r.status_code == 200, r.text
    return r.json()


# --- an independent computation -----------------------------------------------------------------


def value(rep: str, metric: str) -> float | None:
    calls = CALLS[rep]
    if not calls:
        return None
    if metric in ("rep_talk_share", "longest_monologue_s"):
        return statistics.fmean(float(c.metrics[metric] or 0) for c in calls)
    if metric == "questions_per_call":
        return sum(int(c.metrics["rep_questions"] or 0) for c in calls) / len(calls)
    tactic = metric.removesuffix("_per_call")
    moments: int = sum(m["tactic"] == tactic for c in calls for m in c.moments)
    return moments / len(calls)


def naive(rep: str, metric: str, min_sample: int) -> dict[str, Any]:
    def qualifies(r: str) -> bool:
        return value(r, metric) is not None and len(CALLS[r]) >= min_sample

    mine = value(rep, metric)
    peers = [
        v
        for r in TALKS
        if r != rep and TALKS[r].active and qualifies(r) and (v := value(r, metric)) is not None
    ]
    out: dict[str, Any] = {"value": mine, "sample": len(CALLS[rep]), "peers": len(peers)}
    out |= {"peer_median": None, "percentile": None, "gap_pct": None, "z": None}
    if not peers:
        return out
    median = out["peer_median"] = statistics.median(peers)
    if mine is None:
        return out
    out["percentile"] = (
        100 * (sum(v < mine for v in peers) + 0.5 * sum(v == mine for v in peers)) / len(peers)
    )
    out["gap_pct"] = (mine - median) / median if median else None
    mad = statistics.median(abs(v - median) for v in peers)
    if qualifies(rep) and len(peers) >= 5 and mad:
        out["z"] = (mine - median) / (SCALE * mad)
    return out


def naive_focus(standings: dict[str, dict[str, Any]]) -> list[str]:
    scored = []
    for i, metric in enumerate(TALK):
        z = standings[metric]["z"]
        if z is None:
            continue
        score = -abs(z) if metric in TWO_SIDED else -z if metric in HIGHER_IS_WORSE else z
        if score <= -1:
            scored.append((score, i, metric))
    return [m for _, _, m in sorted(scored)[:2]]


def assert_standing(got: dict[str, Any], want: dict[str, Any], where: Any) -> None:
    assert set(got) == set(want), where
    for k, v in want.items():
        assert got[k] == (v if v is None else pytest.approx(v, rel=1e-9)), (where, k, got, want)


# --- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("min_sample", [20, 5])
async def test_every_conversation_standing_matches_the_naive_computation(
    client: httpx.AsyncClient, org: TenantCtx, min_sample: int
) -> None:
    for rep in TALKS:
        body = await get(client, org, f"/v1/coaching/reps/{rep}", min_sample=min_sample)
        want = {m: naive(rep, m, min_sample) for m in TALK}
        for metric, standing in want.items():
            assert_standing(body["metrics"][metric], standing, (rep, metric, min_sample))
        # No 5.1 activity here: every other metric has no z, so focus comes from conversations alone.
        assert body["focus"] == naive_focus(want), (rep, min_sample)


async def test_by_hand(client: httpx.AsyncClient, org: TenantCtx) -> None:
    lecturer = await get(client, org, "/v1/coaching/reps/lecturer")
    mono = lecturer["metrics"]["longest_monologue_s"]
    # peers a 60, b 70, c 80, d 65, e 75, talker 72, quiet 20 (few is below min_sample, gone left):
    # median 70; deviations 10 0 10 5 5 2 50 -> MAD 5
    assert (mono["value"], mono["sample"], mono["peers"]) == (pytest.approx(300.0), 21, 7)
    assert mono["peer_median"] == pytest.approx(70.0)
    assert mono["z"] == pytest.approx(230 / (SCALE * 5))  # far above: the worse side
    assert mono["gap_pct"] == pytest.approx(230 / 70)
    assert mono["percentile"] == 100.0
    assert lecturer["focus"] == ["longest_monologue_s"]

    quiet = await get(client, org, "/v1/coaching/reps/quiet")
    # a short monologue is no gap; talking too little is, and so are the few questions and labels
    assert quiet["metrics"]["longest_monologue_s"]["z"] < -1
    assert quiet["metrics"]["rep_talk_share"]["z"] < -1
    assert "longest_monologue_s" not in quiet["focus"]
    assert len(quiet["focus"]) == 2

    talker = await get(client, org, "/v1/coaching/reps/talker")
    assert talker["metrics"]["rep_talk_share"]["z"] > 1  # talking too much is a gap too
    assert talker["focus"] == ["rep_talk_share"]

    few = await get(client, org, "/v1/coaching/reps/few")
    assert few["metrics"]["longest_monologue_s"]["sample"] == 6
    assert few["metrics"]["longest_monologue_s"]["value"] == pytest.approx(400.0)
    assert few["metrics"]["longest_monologue_s"]["z"] is None
    assert few["focus"] == []

    none = await get(client, org, "/v1/coaching/reps/none")
    assert {none["metrics"][m]["value"] for m in TALK} == {None}
    assert {none["metrics"][m]["sample"] for m in TALK} == {0}


async def test_team_view_focus(client: httpx.AsyncClient, org: TenantCtx) -> None:
    body = await get(client, org, "/v1/coaching/team")
    want = [
        {"rep_id": rep, "team": "east", "focus": naive_focus({m: naive(rep, m, 20) for m in TALK})}
        for rep in sorted(r for r, t in TALKS.items() if t.active)
    ]
    assert [{k: r[k] for k in ("rep_id", "team", "focus")} for r in body["reps"]] == want
    assert sum(bool(r["focus"]) for r in want) >= 3


def test_focus_orientation() -> None:
    """Pure: the same z reads as a gap or not depending on the metric."""
    peers = [
        CoachingRep(f"p{i}", "east", {m: Observation(v, 50) for m in TALK})
        for i, v in enumerate((1, 2, 3, 4, 5))
    ]
    high = CoachingRep("high", "east", {m: Observation(9.0, 50) for m in TALK})
    low = CoachingRep("low", "east", {m: Observation(-3.0, 50) for m in TALK})
    result = {r.rep_id: r for r in coach_scope([high, *peers])} | {
        r.rep_id: r for r in coach_scope([low, *peers])
    }
    # peers 1..5: median 3, MAD 1; z = +-6 / 1.4826
    assert result["high"].metrics["longest_monologue_s"].z == pytest.approx(6 / SCALE)
    assert result["high"].focus == ("rep_talk_share", "longest_monologue_s")  # ties: the earlier metric
    assert result["low"].focus == ("rep_talk_share", "questions_per_call")
