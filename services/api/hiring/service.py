"""Which hiring traits predict performance (SPEC 5.3): scorecards at hire against a later outcome.

Roberge hires on a scorecard of traits and then checks, once there is data, which traits actually
correlate with quota attainment. This module validates scorecards and computes, per trait, Pearson
r (with its two-sided p-value and a Fisher-z 95 % interval) and Spearman rho against an outcome.
The statistics are pure; the reads at the end fetch scorecards and window sums for them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from scipy import stats
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.hiring import queries
from services.api.kit.errors import NotFound
from services.api.kit.reads import rollup_read
from services.api.kit.sums import METRICS, check_metric, window_metrics
from services.api.kit.windows import WindowSpec

STANDARD_TRAITS: tuple[str, ...] = (
    "coachability",
    "curiosity",
    "prior_success",
    "intelligence",
    "work_ethic",
)
MIN_SCORE = 1
MAX_SCORE = 10
MAX_TRAITS = 50
TRAIT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TRAIT_NAME_RULE = "must be 1-64 characters: a lowercase letter, then lowercase letters, digits or '_'"

# Any SPEC 5.1 metric can be the outcome.
OUTCOMES: tuple[str, ...] = METRICS
DEFAULT_OUTCOME = "quota_attainment"

# Below ten reps a correlation is noise however small its p-value looks.
MIN_MEANINGFUL_N = 10
Z_95 = 1.96
# scipy can return r = 0.9999999999999998 for exactly linear data; treat that as 1.
PERFECT_R = 1.0 - 1e-12


class ScorecardError(ValueError):
    """Invalid scorecard input; `details` are {"field", "reason"} entries as in the JSON error body."""

    def __init__(self, details: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{d['field']}: {d['reason']}" for d in details))
        self.details = details


@dataclass(frozen=True)
class TraitCorrelation:
    """One trait against the outcome. Fields that cannot be computed are None (see `correlate`)."""

    n: int
    r: float | None
    rho: float | None
    p_value: float | None
    ci95: tuple[float, float] | None
    insufficient_data: bool


def trait_name_problem(name: object) -> str | None:
    """Why `name` is not a usable trait name, or None when it is."""
    if not isinstance(name, str) or not TRAIT_NAME.match(name):
        return TRAIT_NAME_RULE
    return None


def parse_score(score: object) -> int:
    """A trait score as an int (a whole number 1-10; 7.0 is accepted); ValueError says why not."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise ValueError(f"must be a whole number from {MIN_SCORE} to {MAX_SCORE}")
    if isinstance(score, float) and not score.is_integer():
        raise ValueError(f"must be a whole number from {MIN_SCORE} to {MAX_SCORE}")
    value = int(score)
    if not MIN_SCORE <= value <= MAX_SCORE:
        raise ValueError(f"must be between {MIN_SCORE} and {MAX_SCORE}")
    return value


def scorecard_problems(traits: Mapping[str, object], field: str = "traits") -> list[dict[str, str]]:
    """Every problem of a scorecard's `traits` object, one {"field", "reason"} entry each."""
    try:
        validate_scorecard(traits, field)
    except ScorecardError as exc:
        return exc.details
    return []


def validate_scorecard(traits: Mapping[str, object], field: str = "traits") -> dict[str, int]:
    """The scorecard with its scores as ints; raises `ScorecardError` naming every bad trait."""
    if not traits:
        raise ScorecardError([{"field": field, "reason": "must score at least one trait"}])
    if len(traits) > MAX_TRAITS:
        raise ScorecardError([{"field": field, "reason": f"must have at most {MAX_TRAITS} traits"}])
    problems, scores = [], {}
    for name, score in traits.items():
        if (name_problem := trait_name_problem(name)) is not None:
            problems.append({"field": field, "reason": f"trait name {str(name)[:80]!r} {name_problem}"})
            continue
        try:
            scores[name] = parse_score(score)
        except ValueError as exc:
            problems.append({"field": f"{field}.{name}", "reason": str(exc)})
    if problems:
        raise ScorecardError(problems)
    return scores


def fisher_ci95(r: float | None, n: int) -> tuple[float, float] | None:
    """95 % interval of a Pearson r by the Fisher z transform; None for n < 4 or |r| = 1."""
    if r is None or n < 4 or abs(r) >= PERFECT_R:
        return None
    z = math.atanh(r)
    half = Z_95 / math.sqrt(n - 3)
    return (math.tanh(z - half), math.tanh(z + half))


def correlate(xs: Sequence[float], ys: Sequence[float]) -> TraitCorrelation:
    """Pearson r, its two-sided p-value and CI, and Spearman rho of paired samples.

    r, rho and p_value are None below three pairs or when either side is constant (no variance,
    no correlation); `insufficient_data` is set below ten pairs, with whatever could be computed.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys must pair up")
    n = len(xs)
    insufficient = n < MIN_MEANINGFUL_N
    if n < 3 or _constant(xs) or _constant(ys):
        return TraitCorrelation(n, None, None, None, None, insufficient)
    pearson = _scipy(stats.pearsonr, xs, ys)
    r, p_value = float(pearson.statistic), float(pearson.pvalue)
    if abs(r) >= PERFECT_R:
        r, p_value = math.copysign(1.0, r), 0.0
    rho = float(_scipy(stats.spearmanr, xs, ys).statistic)
    return TraitCorrelation(n, r, rho, p_value, fisher_ci95(r, n), insufficient)


def trait_correlations(
    scorecards: Mapping[str, Mapping[str, float]], outcomes: Mapping[str, float | None]
) -> dict[str, TraitCorrelation]:
    """Each trait (the standard five, then custom ones by name) against the reps' outcomes.

    `scorecards`: rep_id -> trait -> score. `outcomes`: rep_id -> the outcome metric over the
    window. A rep counts for a trait when it has both a score for it and a (finite) outcome.
    """
    custom = sorted({t for card in scorecards.values() for t in card} - set(STANDARD_TRAITS))
    out = {}
    for trait in (*STANDARD_TRAITS, *custom):
        xs, ys = [], []
        for rep_id in sorted(scorecards):
            score = scorecards[rep_id].get(trait)
            outcome = outcomes.get(rep_id)
            if score is not None and outcome is not None and math.isfinite(outcome):
                xs.append(float(score))
                ys.append(float(outcome))
        out[trait] = correlate(xs, ys)
    return out


def _constant(values: Sequence[float]) -> bool:
    return all(v == values[0] for v in values)


def _scipy(fn: Any, xs: Sequence[float], ys: Sequence[float]) -> Any:
    # Near-constant input may still warn about precision; the guards above already handle the
    # meaningful cases, and a warning must not reach the logs on every request.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(xs, ys)


# --- reads and writes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Correlations:
    outcome: str
    start: date
    end: date
    as_of: datetime | None
    traits: dict[str, TraitCorrelation]


async def put_scorecard(
    engine: AsyncEngine, *, tenant: str, rep_id: str, traits: dict[str, int]
) -> tuple[Row[Any], bool]:
    found = await queries.put_scorecard(engine, tenant, rep_id, traits)
    if found is None:
        # Identical for a rep of another tenant and a rep that does not exist: nothing leaks.
        raise NotFound("no such rep")
    return found


async def get_scorecard(engine: AsyncEngine, *, tenant: str, rep_id: str) -> Row[Any]:
    row = await queries.get_scorecard(engine, tenant, rep_id)
    if row is None:
        raise NotFound("no scorecard for this rep")
    return row


async def correlations(
    engine: AsyncEngine, *, tenant: str, outcome: str, spec: WindowSpec, now: datetime
) -> Correlations:
    """Every trait of the active reps' scorecards against `outcome` over the window."""
    check_metric("outcome", outcome)
    with rollup_read("hiring_correlations"):
        found = await queries.scored_rep_sums(engine, tenant, spec=spec, now=now)
    outcomes = {r.rep_id: window_metrics(r.found)[outcome] for r in found.reps}
    scorecards = {r.rep_id: r.traits for r in found.reps}
    return Correlations(
        outcome, found.start, found.end, found.as_of, trait_correlations(scorecards, outcomes)
    )
