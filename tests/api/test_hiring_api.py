"""Hiring (SPEC 5.3) end to end: scorecards through the API, revenue through ingest, trait
correlations checked against a hand computation and scipy."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from scipy import stats
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.tenancy import create_key
from tests.api.org import Org, organisation
from tests.conftest import Services
from tests.factories import TenantFactory

OCT = {"from": "2026-10-01", "to": "2026-10-30"}
QUOTA = 10_000
MONTHS = 30 / (365.25 / 12)

REPS = [f"r{i:02d}" for i in range(1, 13)]
COACHABILITY = [3, 5, 6, 8, 2, 9, 7, 4, 6, 8, 5, 7]
CURIOSITY = [7, 2, 5, 5, 9, 3, 6, 1, 8, 4, 6, 2]
REVENUE = [4000, 6000, 6500, 9000, 0, 12000, 7000, 5500, 5000, 10000, 3000, 8000]  # r05 sells nothing
GRIT = {"r01": 4, "r02": 6, "r03": 5, "r04": 9}  # a custom trait few reps were scored on


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> AsyncIterator[Org]:
    async with organisation(services, tenants, engine) as o:
        for i, rep in enumerate(REPS):
            await o.rep(rep, team="east", quota_monthly=QUOTA)
            traits = {"coachability": COACHABILITY[i], "curiosity": CURIOSITY[i], "prior_success": 5}
            if rep in GRIT:
                traits["grit"] = GRIT[rep]
            r = await o.request("PUT", f"/v1/hiring/scorecards/{rep}", json={"traits": traits})
            assert r.status_code == 201, r.text
            # two deals each, on different days
            for day, share in ((6, 0.25), (21, 0.75)):
                if REVENUE[i]:
                    at = datetime(2026, 10, day, 15, tzinfo=UTC)
                    o.event("deal.won", at, rep_id=rep, amount=str(REVENUE[i] * share))
        # Scored but no quota (no attainment), scored but inactive, and active but never scored:
        # none of them counts for quota_attainment.
        await o.rep("no-quota", team="east")
        await o.rep("left", team="east", quota_monthly=QUOTA, active=False)
        await o.rep("unscored", team="east", quota_monthly=QUOTA)
        for rep in ("no-quota", "left"):
            r = await o.request("PUT", f"/v1/hiring/scorecards/{rep}", json={"traits": {"coachability": 10}})
            assert r.status_code == 201, r.text
        for rep in ("no-quota", "left", "unscored"):
            o.event("deal.won", datetime(2026, 10, 9, 15, tzinfo=UTC), rep_id=rep, amount="99999")
        await o.flush()
        yield o


def pearson_by_hand(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    return cov / (sx * sy)


def ranks(values: list[float]) -> list[float]:
    ordered = sorted(values)
    # average rank of ties, 1-based
    return [ordered.index(v) + (ordered.count(v) + 1) / 2 for v in values]


async def test_correlations_against_quota_attainment(org: Org) -> None:
    body = await org.get("/v1/hiring/trait-correlations", **OCT)
    assert (body["outcome"], body["from"], body["to"]) == ("quota_attainment", "2026-10-01", "2026-10-30")
    assert body["as_of"] is not None
    attainment = [rev / (QUOTA * MONTHS) for rev in REVENUE]
    for trait, scores in (("coachability", COACHABILITY), ("curiosity", CURIOSITY)):
        got = body["traits"][trait]
        xs = [float(s) for s in scores]
        r = pearson_by_hand(xs, attainment)
        assert got["n"] == 12
        assert got["insufficient_data"] is False
        assert got["r"] == pytest.approx(r, rel=1e-9)
        assert got["r"] == pytest.approx(stats.pearsonr(xs, attainment).statistic, rel=1e-9)
        assert got["rho"] == pytest.approx(pearson_by_hand(ranks(xs), ranks(attainment)), rel=1e-9)
        assert got["rho"] == pytest.approx(stats.spearmanr(xs, attainment).statistic, rel=1e-9)
        # two-sided p of r with n - 2 degrees of freedom
        t = r * math.sqrt(10 / (1 - r * r))
        assert got["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 10), rel=1e-6)
        half = 1.96 / math.sqrt(12 - 3)
        assert got["ci95"] == pytest.approx(
            [math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)]
        )
    assert body["traits"]["coachability"]["r"] > 0.8  # the organisation was built that way
    # A trait everybody scored the same carries no information.
    assert body["traits"]["prior_success"] == {
        "n": 12,
        "r": None,
        "rho": None,
        "p_value": None,
        "ci95": None,
        "insufficient_data": False,
    }
    # Nobody was scored on these; a custom trait of four reps is computed but flagged.
    assert body["traits"]["intelligence"]["n"] == body["traits"]["work_ethic"]["n"] == 0
    grit = body["traits"]["grit"]
    xs = [float(GRIT[r]) for r in sorted(GRIT)]
    ys = [attainment[REPS.index(r)] for r in sorted(GRIT)]
    assert grit["n"] == 4
    assert grit["insufficient_data"] is True
    assert grit["r"] == pytest.approx(stats.pearsonr(xs, ys).statistic, rel=1e-9)


async def test_any_metric_can_be_the_outcome(org: Org) -> None:
    body = await org.get("/v1/hiring/trait-correlations", outcome="revenue_won", **OCT)
    assert body["outcome"] == "revenue_won"
    # Without the quota requirement the quota-less rep counts; the inactive one still does not.
    coach = body["traits"]["coachability"]
    xs = [float(c) for c in COACHABILITY] + [10.0]
    ys = [float(r) for r in REVENUE] + [99999.0]
    assert coach["n"] == 13
    assert coach["r"] == pytest.approx(stats.pearsonr(xs, ys).statistic, rel=1e-9)
    won = await org.get("/v1/hiring/trait-correlations", outcome="deals_won", **OCT)
    deals = [2.0 if rev else 0.0 for rev in REVENUE] + [1.0]
    assert won["traits"]["coachability"]["r"] == pytest.approx(stats.pearsonr(xs, deals).statistic, rel=1e-9)


async def test_a_window_without_data_has_no_correlation(org: Org) -> None:
    body = await org.get("/v1/hiring/trait-correlations", **{"from": "2025-01-01", "to": "2025-01-31"})
    coach = body["traits"]["coachability"]
    assert coach["n"] == 12  # every attainment is 0: a constant outcome
    assert (coach["r"], coach["rho"], coach["p_value"]) == (None, None, None)


async def test_unknown_outcome_is_named(org: Org) -> None:
    r = await org.request("GET", "/v1/hiring/trait-correlations", params={"outcome": "happiness"})
    assert r.status_code == 422
    [detail] = r.json()["error"]["details"]
    assert detail["field"] == "outcome"
    assert "quota_attainment" in detail["reason"]


async def test_scorecard_put_get_replace(org: Org) -> None:
    assert (await org.get("/v1/hiring/scorecards/r04"))["traits"] == {
        "coachability": 8,
        "curiosity": 5,
        "prior_success": 5,
        "grit": 9,
    }
    await org.rep("new-hire", team="east")
    r = await org.request("PUT", "/v1/hiring/scorecards/new-hire", json={"traits": {"coachability": 7.0}})
    assert r.status_code == 201, r.text
    assert r.json()["traits"] == {"coachability": 7}
    assert r.json()["rep_id"] == "new-hire"
    r = await org.request("PUT", "/v1/hiring/scorecards/new-hire", json={"traits": {"curiosity": 4}})
    assert r.status_code == 200, r.text
    got = await org.get("/v1/hiring/scorecards/new-hire")
    assert got["traits"] == {"curiosity": 4}  # replaced, not merged
    assert got["updated_at"] is not None


async def test_scorecard_refusals(org: Org, engine: AsyncEngine) -> None:
    r = await org.request("PUT", "/v1/hiring/scorecards/nobody", json={"traits": {"coachability": 7}})
    assert r.status_code == 404
    assert (await org.request("GET", "/v1/hiring/scorecards/nobody")).status_code == 404
    assert (await org.request("GET", "/v1/hiring/scorecards/unscored")).status_code == 404

    bad = {"coachability": 11, "Curiosity": 5, "work_ethic": 7.5, "grit": 6}
    r = await org.request("PUT", "/v1/hiring/scorecards/r01", json={"traits": bad})
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert sorted(d["field"] for d in details) == ["traits", "traits.coachability", "traits.work_ethic"]
    assert next(d for d in details if d["field"] == "traits")["reason"].startswith("trait name 'Curiosity'")
    bodies: list[dict[str, Any]] = [
        {"traits": {}},
        {"traits": {"coachability": True}},
        {"traits": "8"},
        {"scores": {}},
    ]
    for body in bodies:
        r = await org.request("PUT", "/v1/hiring/scorecards/r01", json=body)
        assert r.status_code == 422, (body, r.text)
    # Refused writes changed nothing.
    assert (await org.get("/v1/hiring/scorecards/r01"))["traits"]["coachability"] == 3

    reader = await create_key(engine, org.tenant.slug, ["hiring:read"])
    r = await org.request("PUT", "/v1/hiring/scorecards/r01", key=reader, json={"traits": {"grit": 1}})
    assert r.status_code == 403
