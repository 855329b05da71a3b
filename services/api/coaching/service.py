"""Peer-relative coaching numbers (SPEC 5.2): where each rep stands against the other active reps.

Roberge's rule is to coach a rep on one or two gaps, not on everything, so besides the standing on
every metric each rep gets at most two `focus` metrics: the ones where the rep sits furthest below
the peers in robust z-score terms (median and MAD, so one outlier rep does not move everybody).

The statistics are pure; `rep_coaching` and `team_coaching` at the end read the scope's window sums
(one statement each) and hand them over.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.coaching import queries
from services.api.deps import rollup_read
from services.api.reps.service import metrics_from_sums
from services.api.windows import WindowSpec
from services.core.http import ApiError

RATE_METRICS: tuple[str, ...] = (
    "connect_rate",
    "meeting_rate",
    "show_rate",
    "reply_rate",
    "win_rate",
    "talk_ratio",
    "avg_deal_size",
)
ACTIVITY_METRICS: tuple[str, ...] = ("dials", "emails_sent", "meetings_booked")
COACHING_METRICS: tuple[str, ...] = RATE_METRICS + ACTIVITY_METRICS

# The 5.1 counts each rate is taken over. `talk_calls` (calls with both talk times) is a rollup
# column rather than a 5.1 metric; it is the denominator of `talk_ratio`.
DENOMINATORS: Mapping[str, tuple[str, ...]] = {
    "connect_rate": ("dials",),
    "meeting_rate": ("connects",),
    "show_rate": ("meetings_booked",),
    "reply_rate": ("emails_sent",),
    "win_rate": ("deals_won", "deals_lost"),
    "talk_ratio": ("talk_calls",),
    "avg_deal_size": ("deals_won",),
}

# For talk_ratio neither direction is good: a rep who talks far more or far less than the peers
# both need coaching, so its distance from the median counts in either direction.
TWO_SIDED: frozenset[str] = frozenset({"talk_ratio"})

DEFAULT_MIN_SAMPLE = 20
MAD_TO_SIGMA = 1.4826  # makes the MAD a consistent estimate of sigma for normal data
MIN_PEERS_FOR_Z = 5
FOCUS_THRESHOLD = -1.0
MAX_FOCUS = 2


@dataclass(frozen=True)
class Observation:
    """One rep's value of one metric and the count it was computed over.

    `value` is None for a rate whose denominator is 0. `sample` is the denominator of a rate and
    None for activity metrics (they have none: every active rep is a peer).
    """

    value: float | None
    sample: int | None = None


@dataclass(frozen=True)
class CoachingRep:
    """An active rep of the scope. A metric missing from `metrics` counts as having no value."""

    rep_id: str
    team: str | None
    metrics: Mapping[str, Observation]


@dataclass(frozen=True)
class Standing:
    """Where one rep stands on one metric (SPEC 5.6 `metrics.<name>`)."""

    value: float | None
    sample: int | None
    peers: int
    peer_median: float | None
    percentile: float | None
    gap_pct: float | None
    z: float | None


@dataclass(frozen=True)
class RepCoaching:
    rep_id: str
    team: str | None
    metrics: dict[str, Standing]
    focus: tuple[str, ...]


def observations(metrics: Mapping[str, float | int | None]) -> dict[str, Observation]:
    """Coaching input from one rep's 5.1 metrics plus `talk_calls`; a missing count is taken as 0."""
    out: dict[str, Observation] = {}
    for name in RATE_METRICS:
        sample = sum(int(metrics.get(count) or 0) for count in DENOMINATORS[name])
        out[name] = Observation(_finite(metrics.get(name)), sample)
    for name in ACTIVITY_METRICS:
        out[name] = Observation(_finite(metrics.get(name)), None)
    return out


def coach_scope(
    reps: Sequence[CoachingRep], *, min_sample: int = DEFAULT_MIN_SAMPLE, by_team: bool = False
) -> list[RepCoaching]:
    """Every rep's standing against the others of `reps`, in input order.

    `reps` are the active reps of the scope (rep ids unique). With `by_team`, each rep is compared
    with the other reps of its own team only; a rep without a team then has no peers.
    Runs in O(reps x log reps) per metric.
    """
    if not by_team:
        return _coach_group(reps, min_sample)
    groups: dict[str | int, list[CoachingRep]] = {}
    for i, rep in enumerate(reps):
        # A rep without a team is a group of its own (int keys never collide with team names).
        groups.setdefault(rep.team if rep.team is not None else i, []).append(rep)
    done = {c.rep_id: c for group in groups.values() for c in _coach_group(group, min_sample)}
    return [done[rep.rep_id] for rep in reps]


def coach_rep(
    rep_id: str, reps: Sequence[CoachingRep], *, min_sample: int = DEFAULT_MIN_SAMPLE
) -> RepCoaching | None:
    """One rep of the scope against the others; None when `rep_id` is not among `reps`."""
    index = next((i for i, rep in enumerate(reps) if rep.rep_id == rep_id), None)
    if index is None:
        return None
    # Only this rep's standings: the others' are not needed (a team view computes them all).
    standings = {name: _standings(name, reps, min_sample, only=index)[0] for name in COACHING_METRICS}
    return RepCoaching(rep_id, reps[index].team, standings, focus_metrics(standings))


def focus_metrics(standings: Mapping[str, Standing]) -> tuple[str, ...]:
    """At most two metrics with z <= -1, most negative first (talk_ratio: -|z|)."""
    scored = []
    for order, name in enumerate(COACHING_METRICS):
        standing = standings.get(name)
        if standing is None or standing.z is None:
            continue
        score = -abs(standing.z) if name in TWO_SIDED else standing.z
        if score <= FOCUS_THRESHOLD:
            scored.append((score, order, name))
    return tuple(name for _, _, name in sorted(scored)[:MAX_FOCUS])


def team_focus(results: Iterable[RepCoaching]) -> list[tuple[str, tuple[str, ...]]]:
    """The team view (SPEC 5.2): every rep with its focus metrics."""
    return [(r.rep_id, r.focus) for r in results]


def _coach_group(reps: Sequence[CoachingRep], min_sample: int) -> list[RepCoaching]:
    per_metric = {name: _standings(name, reps, min_sample) for name in COACHING_METRICS}
    out = []
    for i, rep in enumerate(reps):
        standings = {name: per_metric[name][i] for name in COACHING_METRICS}
        out.append(RepCoaching(rep.rep_id, rep.team, standings, focus_metrics(standings)))
    return out


def _standings(
    name: str, reps: Sequence[CoachingRep], min_sample: int, only: int | None = None
) -> list[Standing]:
    """Every rep's standing on `name`, or just the one of `reps[only]`."""
    observed = [rep.metrics.get(name, Observation(None)) for rep in reps]
    activity = name not in DENOMINATORS
    values = [_finite(o.value) for o in observed]
    qualified = [
        v is not None and (activity or (o.sample or 0) >= min_sample)
        for o, v in zip(observed, values, strict=True)
    ]
    peers = _Peers(sorted(v for v, q in zip(values, qualified, strict=True) if q and v is not None))
    out = []
    for i, (o, value, is_peer) in enumerate(zip(observed, values, qualified, strict=True)):
        if only is None or i == only:
            out.append(peers.standing(value, None if activity else o.sample, is_peer))
    return out


class _Peers:
    """The qualified values of one metric, sorted, answering leave-one-out statistics fast.

    A qualified rep's peers are all qualified values but its own. Removing one element from a
    sorted list shifts the indices above it by one, so the k-th peer value, the peer median and
    the rank are index arithmetic. The MAD needs the sorted deviations from the peer median; a
    leave-one-out median takes at most three distinct values, so those lists are built at most
    four times per metric and cached by median.
    """

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self._deviations: dict[float, list[float]] = {}

    def standing(self, value: float | None, sample: int | None, is_peer: bool) -> Standing:
        values = self.values
        # The rep's own value sits in `values` when it qualifies; drop one copy of it.
        skip = bisect_left(values, value) if is_peer and value is not None else None
        count = len(values) - (skip is not None)
        if count == 0:
            return Standing(value, sample, 0, None, None, None, None)
        median = _median_without(values, skip)
        if value is None:
            return Standing(None, sample, count, median, None, None, None)
        below = bisect_left(values, value)
        equal = bisect_right(values, value) - below - (skip is not None)
        percentile = 100.0 * (below + 0.5 * equal) / count
        gap = (value - median) / median if median != 0 else None
        z = None
        if is_peer and count >= MIN_PEERS_FOR_Z:
            deviations = self._deviations_from(median)
            own = bisect_left(deviations, abs(value - median)) if skip is not None else None
            mad = _median_without(deviations, own)
            if mad > 0:
                z = (value - median) / (MAD_TO_SIGMA * mad)
        return Standing(value, sample, count, median, percentile, gap, z)

    def _deviations_from(self, median: float) -> list[float]:
        cached = self._deviations.get(median)
        if cached is None:
            cached = self._deviations[median] = sorted(abs(v - median) for v in self.values)
        return cached


def _median_without(values: list[float], skip: int | None) -> float:
    """Median of the sorted `values` with the element at index `skip` (if any) left out."""
    n = len(values) - (skip is not None)

    def kth(k: int) -> float:
        return values[k + 1] if skip is not None and k >= skip else values[k]

    return (kth((n - 1) // 2) + kth(n // 2)) / 2


def _finite(value: float | int | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


# --- reads ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coached:
    """Coaching results of a read, with the window they cover."""

    start: date
    end: date
    as_of: datetime | None
    reps: list[RepCoaching]


def rep_observations(sums: Mapping[str, Any]) -> dict[str, Observation]:
    """Coaching input from one rep's counter sums of `rollup_rep_daily` (queries.COACHING_COLUMNS)."""
    # Quota attainment is no coaching metric, so no quota and the window's length does not matter.
    metrics = metrics_from_sums(sums, quota_monthly=None, days=1)
    return observations({**metrics, "talk_calls": int(sums.get("talk_calls", 0))})


def _coaching_reps(group: queries.GroupSums) -> list[CoachingRep]:
    return [CoachingRep(r.rep_id, r.team, rep_observations(r.sums)) for r in group.reps]


async def rep_coaching(
    engine: AsyncEngine,
    tenant: str,
    rep_id: str,
    *,
    scope: Literal["tenant", "team"],
    min_sample: int,
    spec: WindowSpec,
    now: datetime,
) -> Coached:
    with rollup_read("coaching_rep"):
        group = await queries.rep_and_peers(engine, tenant, rep_id, scope, spec, now)
    result = None if group is None else coach_rep(rep_id, _coaching_reps(group), min_sample=min_sample)
    if group is None or result is None:
        raise ApiError(404, "not_found", "no such rep")
    return Coached(group.start, group.end, group.as_of, [result])


async def team_coaching(
    engine: AsyncEngine,
    tenant: str,
    *,
    scope: Literal["tenant", "team"],
    team: str | None,
    min_sample: int,
    spec: WindowSpec,
    now: datetime,
) -> Coached:
    """Every active rep (of `team`, if given) with its focus; peers per `scope`."""
    with rollup_read("coaching_team"):
        group = await queries.active_reps(engine, tenant, team if scope == "team" else None, spec, now)
    reps = [] if group is None else _coaching_reps(group)
    if group is None or (team is not None and not any(r.team == team for r in reps)):
        # The same answer for another tenant's team and a team nobody is in.
        raise ApiError(404, "not_found", "no active rep in this team")
    results = coach_scope(reps, min_sample=min_sample, by_team=scope == "team")
    if team is not None:
        results = [r for r in results if r.team == team]
    return Coached(group.start, group.end, group.as_of, results)
