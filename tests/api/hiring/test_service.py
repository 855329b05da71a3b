"""Trait correlations (SPEC 5.3) checked by hand formulas and against scipy, and scorecard validation."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from pydantic import ValidationError
from scipy import stats

from services.api.hiring.schemas import ScorecardIn, TraitCorrelationOut
from services.api.hiring.service import (
    STANDARD_TRAITS,
    ScorecardError,
    correlate,
    fisher_ci95,
    parse_score,
    scorecard_problems,
    trait_correlations,
    trait_name_problem,
    validate_scorecard,
)


def test_tiny_case_by_hand() -> None:
    # x = 1 2 3 4, y = 2 4 5 4: dx = -1.5 -.5 .5 1.5, dy = -1.75 .25 1.25 .25
    # sum dx dy = 3.5, sum dx^2 = 5, sum dy^2 = 4.75 -> r = 3.5 / sqrt(23.75)
    c = correlate([1, 2, 3, 4], [2, 4, 5, 4])
    r = 3.5 / math.sqrt(23.75)
    assert c.n == 4
    assert c.r == pytest.approx(r)
    assert c.r == pytest.approx(0.718185, abs=1e-6)
    # ranks of y: 1 2.5 4 2.5 -> sum d d = 3, sum dy^2 = 4.5 -> rho = 3 / sqrt(22.5)
    assert c.rho == pytest.approx(3 / math.sqrt(22.5))
    # with n - 2 = 2 degrees of freedom the t distribution has a closed form: p = 1 - |r|
    assert c.p_value == pytest.approx(1 - r)
    # Fisher: atanh(r) +- 1.96 / sqrt(4 - 3), back through tanh
    assert c.ci95 is not None
    assert c.ci95 == pytest.approx((math.tanh(math.atanh(r) - 1.96), math.tanh(math.atanh(r) + 1.96)))
    assert c.ci95 == pytest.approx((-0.784172, 0.993512), abs=1e-6)
    assert c.insufficient_data


# Twelve reps: coachability tracks quota attainment, curiosity does not.
REPS = [f"r{i:02d}" for i in range(12)]
COACHABILITY = [3, 4, 4, 5, 6, 6, 7, 7, 8, 8, 9, 10]
CURIOSITY = [7, 2, 9, 4, 6, 5, 3, 8, 5, 6, 4, 7]
ATTAINMENT = [0.41, 0.62, 0.50, 0.71, 0.66, 0.90, 0.84, 1.02, 0.95, 1.21, 1.10, 1.35]


def hand_pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy)


def test_correlations_of_a_team_of_twelve() -> None:
    cards = {
        rep: {"coachability": c, "curiosity": q}
        for rep, c, q in zip(REPS, COACHABILITY, CURIOSITY, strict=True)
    }
    outcomes: dict[str, float | None] = dict(zip(REPS, ATTAINMENT, strict=True))
    result = trait_correlations(cards, outcomes)
    assert list(result) == list(STANDARD_TRAITS)
    coach = result["coachability"]
    assert coach.n == 12
    assert not coach.insufficient_data
    assert coach.r == pytest.approx(hand_pearson(COACHABILITY, ATTAINMENT))
    scipy_r = stats.pearsonr(COACHABILITY, ATTAINMENT)
    assert coach.r == pytest.approx(float(scipy_r.statistic))
    assert coach.p_value == pytest.approx(float(scipy_r.pvalue))
    assert coach.p_value is not None
    assert coach.p_value < 0.001
    assert coach.rho == pytest.approx(float(stats.spearmanr(COACHABILITY, ATTAINMENT).statistic))
    r = hand_pearson(COACHABILITY, ATTAINMENT)
    half = 1.96 / math.sqrt(12 - 3)
    assert coach.ci95 == pytest.approx((math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)))
    curious = result["curiosity"]
    assert curious.r == pytest.approx(hand_pearson(CURIOSITY, ATTAINMENT))
    assert curious.p_value is not None
    assert curious.p_value > 0.05
    # traits nobody scored are listed, with nothing to compute
    assert result["work_ethic"].n == 0
    assert result["work_ethic"].r is None
    assert result["work_ethic"].insufficient_data


def test_reps_without_outcome_or_score_are_left_out() -> None:
    cards: dict[str, dict[str, float]] = {rep: {"grit": c} for rep, c in zip(REPS, COACHABILITY, strict=True)}
    cards["r99"] = {"curiosity": 5}  # scored another trait only
    outcomes: dict[str, float | None] = dict(zip(REPS, ATTAINMENT, strict=True))
    outcomes["r00"] = None  # no quota: attainment undefined
    outcomes["r01"] = float("nan")
    outcomes["nobody"] = 1.0  # an outcome without a scorecard
    result = trait_correlations(cards, outcomes)
    assert list(result) == [*STANDARD_TRAITS, "grit"]
    grit = result["grit"]
    assert grit.n == 10
    assert not grit.insufficient_data
    assert grit.r == pytest.approx(hand_pearson(COACHABILITY[2:], ATTAINMENT[2:]))
    assert result["curiosity"].n == 0


def test_fewer_than_ten_reps_is_insufficient_but_still_computed() -> None:
    c = correlate(COACHABILITY[:9], ATTAINMENT[:9])
    assert c.n == 9
    assert c.insufficient_data
    assert c.r == pytest.approx(hand_pearson(COACHABILITY[:9], ATTAINMENT[:9]))
    assert c.rho is not None
    assert c.p_value is not None
    assert c.ci95 is not None


def test_two_reps_give_no_correlation() -> None:
    c = correlate([3, 8], [0.5, 1.0])
    assert (c.n, c.r, c.rho, c.p_value, c.ci95, c.insufficient_data) == (2, None, None, None, None, True)
    assert correlate([], []).n == 0


def test_three_reps_give_r_without_interval() -> None:
    c = correlate([1, 2, 3], [1, 3, 2])
    # dx = -1 0 1, dy = -1 1 0: r = 1 / sqrt(2 x 2)
    assert c.r == pytest.approx(0.5)
    assert c.rho == pytest.approx(0.5)
    assert c.ci95 is None  # Fisher z needs n >= 4


def test_constant_input_gives_no_correlation() -> None:
    everyone_eight = correlate([8] * 12, ATTAINMENT)
    assert everyone_eight.r is None
    assert everyone_eight.rho is None
    assert everyone_eight.p_value is None
    assert correlate(COACHABILITY, [1.0] * 12).r is None


def test_perfect_correlation_has_no_interval() -> None:
    c = correlate([1, 2, 3, 4, 5], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert c.r == 1.0
    assert c.rho == pytest.approx(1.0)
    assert c.p_value == 0.0
    assert c.ci95 is None
    assert correlate([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]).r == -1.0


def test_fisher_interval_rules() -> None:
    assert fisher_ci95(None, 20) is None
    assert fisher_ci95(0.5, 3) is None
    assert fisher_ci95(1.0, 20) is None
    lo, hi = fisher_ci95(0.0, 28) or (0.0, 0.0)
    # atanh(0) = 0, half width 1.96 / 5 = .392
    assert (lo, hi) == pytest.approx((math.tanh(-0.392), math.tanh(0.392)))


def test_validate_scorecard_accepts_whole_scores() -> None:
    assert validate_scorecard({"coachability": 8, "curiosity": 6.0, "grit_2": 10}) == {
        "coachability": 8,
        "curiosity": 6,
        "grit_2": 10,
    }
    assert parse_score(1) == 1


@pytest.mark.parametrize("score", [0, 11, 7.5, "7", True, None, float("nan"), float("inf"), -3])
def test_bad_scores_are_refused(score: object) -> None:
    with pytest.raises(ScorecardError) as err:
        validate_scorecard({"coachability": 8, "curiosity": score})
    assert [d["field"] for d in err.value.details] == ["traits.curiosity"]


@pytest.mark.parametrize("name", ["Coachability", "1st_impression", "work-ethic", "", "a" * 65, "grit ", "é"])
def test_unsafe_trait_names_are_refused(name: str) -> None:
    assert trait_name_problem(name) is not None
    problems = scorecard_problems({name: 5})
    assert len(problems) == 1
    assert problems[0]["field"] == "traits"
    assert "trait name" in problems[0]["reason"]


def test_every_problem_is_reported() -> None:
    problems = scorecard_problems({"coachability": 0, "Bad": 5, "curiosity": 6, "grit": 12})
    assert [p["field"] for p in problems] == ["traits.coachability", "traits", "traits.grit"]
    assert scorecard_problems({}) == [{"field": "traits", "reason": "must score at least one trait"}]
    assert scorecard_problems({f"t{i}": 5 for i in range(51)})[0]["reason"] == "must have at most 50 traits"
    assert scorecard_problems({"a" * 64: 5}) == []


def test_scorecard_body() -> None:
    assert ScorecardIn.model_validate({"traits": {"coachability": 8}}).traits == {"coachability": 8}
    with pytest.raises(ValidationError) as err:
        ScorecardIn.model_validate({"traits": {"coachability": 11, "Bad": 3}})
    problems = [(e["loc"], e["msg"]) for e in err.value.errors()]
    assert problems[0] == (("traits", "coachability"), "must be between 1 and 10")
    assert problems[1][0] == ("traits",)
    assert problems[1][1].startswith("trait name 'Bad' must be")
    assert len(problems) == 2
    with pytest.raises(ValidationError):
        ScorecardIn.model_validate({"traits": {"coachability": 8}, "extra": 1})
    with pytest.raises(ValidationError):
        ScorecardIn.model_validate({"traits": ["coachability"]})


def test_correlation_response_shape() -> None:
    body = TraitCorrelationOut.model_validate(correlate([1, 2, 3, 4], [2, 4, 5, 4])).model_dump(mode="json")
    assert set(body) == {"n", "r", "rho", "p_value", "ci95", "insufficient_data"}
    assert isinstance(body["ci95"], list)
    assert len(body["ci95"]) == 2
