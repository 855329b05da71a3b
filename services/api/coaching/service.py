"""Peer-relative coaching numbers (SPEC 5.2, 5.7): where each rep stands against the other active reps.

Roberge's rule is to coach a rep on one or two gaps, not on everything, so besides the standing on
every metric each rep gets at most two `focus` metrics: the ones where the rep sits furthest below
the peers in robust z-score terms (median and MAD, so one outlier rep does not move everybody).

Everything here is pure: the definitions, and the standings of a whole group at once as arrays
(`coach_table`, with stats.py). answers.py reads a group's window sums and serves the answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.api.coaching import stats
from services.api.coaching.stats import Bools, Floats
from services.api.kit.conversations import CALLS, count_column, moments_column, sum_column

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
# SPEC 5.7: per-call means of the conversations, each over the rep's analysed calls.
CONVERSATION_METRICS: tuple[str, ...] = (
    "rep_talk_share",
    "longest_monologue_s",
    "questions_per_call",
    "label_per_call",
    "calibrated_question_per_call",
)
COACHING_METRICS: tuple[str, ...] = RATE_METRICS + ACTIVITY_METRICS + CONVERSATION_METRICS

# The counts each rate is taken over. `talk_calls` (calls with both talk times) is a rollup column
# rather than a 5.1 metric; it is the denominator of `talk_ratio`. A conversation metric's sample is
# the number of calls analysed.
DENOMINATORS: Mapping[str, tuple[str, ...]] = {
    "connect_rate": ("dials",),
    "meeting_rate": ("connects",),
    "show_rate": ("meetings_booked",),
    "reply_rate": ("emails_sent",),
    "win_rate": ("deals_won", "deals_lost"),
    "talk_ratio": ("talk_calls",),
    "avg_deal_size": ("deals_won",),
    **dict.fromkeys(CONVERSATION_METRICS, (CALLS,)),
}

# For the talk shares neither direction is good: a rep who talks far more or far less than the peers
# both need coaching, so the distance from the median counts in either direction.
TWO_SIDED: frozenset[str] = frozenset({"talk_ratio", "rep_talk_share"})
# A monologue longer than the peers' is the gap: its z counts with the sign turned.
HIGHER_IS_WORSE: frozenset[str] = frozenset({"longest_monologue_s"})

DEFAULT_MIN_SAMPLE = 20
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
    """Coaching input from one rep's 5.1 metrics plus `talk_calls`, and its 5.7 metrics plus
    `calls_analysed`; a missing count is taken as 0."""
    out: dict[str, Observation] = {}
    for name in (*RATE_METRICS, *CONVERSATION_METRICS):
        sample = sum(int(metrics.get(count) or 0) for count in DENOMINATORS[name])
        out[name] = Observation(_finite(metrics.get(name)), sample)
    for name in ACTIVITY_METRICS:
        out[name] = Observation(_finite(metrics.get(name)), None)
    return out


@dataclass(frozen=True)
class Table:
    """A peer group's coaching input, one entry per rep (in a fixed order): per metric the values
    (NaN: no value) and, for rates, the denominators (`samples`, exact; `_sample_floats` for the
    qualification test, exact there too since `min_sample` is far below 2**53)."""

    rep_ids: list[str]
    teams: list[str | None]
    values: dict[str, Floats]
    samples: dict[str, list[int | None]]
    _sample_floats: dict[str, Floats] = field(default_factory=dict)

    def qualified(self, name: str, min_sample: int) -> Bools:
        known = ~np.isnan(self.values[name])
        if name not in DENOMINATORS:
            return known
        floats = self._sample_floats.get(name)
        if floats is None:
            floats = self._sample_floats[name] = np.array(
                [s or 0 for s in self.samples[name]], dtype=np.float64
            )
        qualified: Bools = known & (floats >= min_sample)
        return qualified


@dataclass(frozen=True)
class Coached:
    """Every rep's standings of a table, per metric, and each rep's focus."""

    metrics: dict[str, stats.MetricStandings]
    focus: list[tuple[str, ...]]


def table_of(reps: Sequence[CoachingRep]) -> Table:
    values: dict[str, Floats] = {}
    samples: dict[str, list[int | None]] = {}
    for name in COACHING_METRICS:
        observed = [rep.metrics.get(name, Observation(None)) for rep in reps]
        values[name] = _floats(_finite(o.value) for o in observed)
        if name in DENOMINATORS:
            samples[name] = [o.sample for o in observed]
    return Table([r.rep_id for r in reps], [r.team for r in reps], values, samples)


def coach_table(table: Table, *, min_sample: int, by_team: bool) -> Coached:
    """Every rep's standing against the others of the table (with `by_team`, of its own team; a rep
    without a team then has no peers). O(reps x log reps) per metric, vectorised."""
    groups = None
    if by_team:
        labels: dict[str | int, int] = {}
        # A rep without a team is a group of its own (int keys never collide with team names).
        keys = [team if team is not None else i for i, team in enumerate(table.teams)]
        groups = np.array([labels.setdefault(k, len(labels)) for k in keys], dtype=np.int64)
    per_metric = {
        name: stats.standings(table.values[name], table.qualified(name, min_sample), groups)
        for name in COACHING_METRICS
    }
    scores = np.column_stack([_oriented(n, per_metric[n].z) for n in COACHING_METRICS]).reshape(
        len(table.rep_ids), len(COACHING_METRICS)
    )
    picks = stats.focus(scores, FOCUS_THRESHOLD, MAX_FOCUS)
    return Coached(per_metric, [tuple(COACHING_METRICS[c] for c in row) for row in picks])


def _oriented(name: str, z: Floats) -> Floats:
    """z with the gap negative: what `focus` ranks (lowest first)."""
    if name in TWO_SIDED:
        score: Floats = -np.abs(z)
        return score
    return -z if name in HIGHER_IS_WORSE else z


def standing_of(table: Table, coached: Coached, i: int, name: str) -> Standing:
    m = coached.metrics[name]
    sample = table.samples[name][i] if name in DENOMINATORS else None
    return Standing(
        _number(table.values[name][i]),
        sample,
        int(m.peers[i]),
        _number(m.median[i]),
        _number(m.percentile[i]),
        _number(m.gap[i]),
        _number(m.z[i]),
    )


def rep_coaching_of(table: Table, coached: Coached, i: int) -> RepCoaching:
    standings = {name: standing_of(table, coached, i, name) for name in COACHING_METRICS}
    return RepCoaching(table.rep_ids[i], table.teams[i], standings, coached.focus[i])


def coach_scope(
    reps: Sequence[CoachingRep], *, min_sample: int = DEFAULT_MIN_SAMPLE, by_team: bool = False
) -> list[RepCoaching]:
    """Every rep's standing against the others of `reps`, in input order.

    `reps` are the active reps of the scope (rep ids unique). With `by_team`, each rep is compared
    with the other reps of its own team only; a rep without a team then has no peers.
    """
    table = table_of(reps)
    coached = coach_table(table, min_sample=min_sample, by_team=by_team)
    return [rep_coaching_of(table, coached, i) for i in range(len(reps))]


def coach_rep(
    rep_id: str, reps: Sequence[CoachingRep], *, min_sample: int = DEFAULT_MIN_SAMPLE
) -> RepCoaching | None:
    """One rep of the scope against the others; None when `rep_id` is not among `reps`."""
    index = next((i for i, rep in enumerate(reps) if rep.rep_id == rep_id), None)
    if index is None:
        return None
    table = table_of(reps)
    return rep_coaching_of(table, coach_table(table, min_sample=min_sample, by_team=False), index)


def team_focus(results: Iterable[RepCoaching]) -> list[tuple[str, tuple[str, ...]]]:
    """The team view (SPEC 5.2): every rep with its focus metrics."""
    return [(r.rep_id, r.focus) for r in results]


def table_from_sums(rows: Sequence[Mapping[str, Any]]) -> Table:
    """A group's table from its reps' counter sums (queries.GROUP_COLUMNS), the SPEC 5.1 and 5.7
    formulas and `observations` applied to all reps at once: the same float operations, so the same
    values."""
    count = {c: [int(r[c]) for r in rows] for c in ("dials", "connects", "emails_sent", "email_replies",
                                                  "meetings_booked", "meetings_held", "deals_won",
                                                  "deals_lost", "talk_calls")}  # fmt: skip
    deals = [won + lost for won, lost in zip(count["deals_won"], count["deals_lost"], strict=True)]
    f = {c: _floats(v) for c, v in count.items()}
    rep_talk, buyer_talk = (_floats(float(r[c]) for r in rows) for c in ("rep_talk_s", "buyer_talk_s"))
    revenue = _floats(float(r["revenue_won"]) for r in rows)
    values = {
        "connect_rate": _rate(f["connects"], f["dials"]),
        "meeting_rate": _rate(f["meetings_booked"], f["connects"]),
        "show_rate": _rate(f["meetings_held"], f["meetings_booked"]),
        "reply_rate": _rate(f["email_replies"], f["emails_sent"]),
        "win_rate": _rate(f["deals_won"], _floats(deals)),
        "talk_ratio": _rate(rep_talk, rep_talk + buyer_talk),
        "avg_deal_size": _rate(revenue, f["deals_won"]),
        "dials": _finite_array(f["dials"]),
        "emails_sent": _finite_array(f["emails_sent"]),
        "meetings_booked": _finite_array(f["meetings_booked"]),
    }
    samples: dict[str, list[int | None]] = {
        "connect_rate": list(count["dials"]),
        "meeting_rate": list(count["connects"]),
        "show_rate": list(count["meetings_booked"]),
        "reply_rate": list(count["emails_sent"]),
        "win_rate": list(deals),
        "talk_ratio": list(count["talk_calls"]),
        "avg_deal_size": list(count["deals_won"]),
    }
    talk_values, talk_samples = _conversation_columns(rows)
    return Table(
        [r["rep_id"] for r in rows],
        [r["team"] for r in rows],
        values | talk_values,
        samples | talk_samples,
    )


def _conversation_columns(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Floats], dict[str, list[int | None]]]:
    """The conversation metrics (kit.conversations.conversation_metrics) of every rep, and their
    sample, the calls analysed."""

    def column(name: str) -> Floats:
        return _floats(float(r[name]) for r in rows)

    calls = [int(r[CALLS]) for r in rows]
    analysed = _floats(calls)
    values = {
        "rep_talk_share": _rate(column(sum_column("rep_talk_share")), column(count_column("rep_talk_share"))),
        "longest_monologue_s": _rate(
            column(sum_column("longest_monologue_s")), column(count_column("longest_monologue_s"))
        ),
        "questions_per_call": _rate(column(sum_column("rep_questions")), analysed),
        "label_per_call": _rate(column(moments_column("label")), analysed),
        "calibrated_question_per_call": _rate(column(moments_column("calibrated_question")), analysed),
    }
    return values, {name: list(calls) for name in CONVERSATION_METRICS}


def _floats(values: Iterable[float | int | None]) -> Floats:
    return np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64)


def _rate(numerator: Floats, denominator: Floats) -> Floats:
    """`ratio` of the reps' floats, then `_finite`: NaN where the denominator is 0 or the quotient
    is not finite."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        quotient = numerator / denominator
    return _finite_array(np.where(denominator == 0, np.nan, quotient))


def _finite_array(values: Floats) -> Floats:
    finite: Floats = np.where(np.isfinite(values), values, np.nan)
    return finite


def _number(value: float) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _finite(value: float | int | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
