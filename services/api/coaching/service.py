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

import numpy as np

from services.api.coaching import stats
from services.api.coaching.priorities import Priority, rank
from services.api.coaching.stats import Bools, Floats
from services.api.kit.conversations import CALLS
from services.api.kit.sums import ratio
from services.api.kit.windows import DEFAULT_DAYS

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
# Not coached, but the funnel of SPEC 5.9 needs its peer median: deals created per meeting held.
FUNNEL_EXTRA: tuple[str, ...] = ("deals_per_held",)

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
    "deals_per_held": ("meetings_held",),
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
    priorities: tuple[Priority, ...] = ()


def observations(metrics: Mapping[str, float | int | None]) -> dict[str, Observation]:
    """Coaching input from one rep's 5.1 metrics plus `talk_calls`, and its 5.7 metrics plus
    `calls_analysed`; a missing count is taken as 0. `deals_per_held` comes from the counts."""
    out: dict[str, Observation] = {}
    for name in (*RATE_METRICS, *CONVERSATION_METRICS):
        sample = sum(int(metrics.get(count) or 0) for count in DENOMINATORS[name])
        out[name] = Observation(_finite(metrics.get(name)), sample)
    for name in ACTIVITY_METRICS:
        out[name] = Observation(_finite(metrics.get(name)), None)
    held = int(metrics.get("meetings_held") or 0)
    out["deals_per_held"] = Observation(ratio(int(metrics.get("deals_created") or 0), held), held)
    return out


@dataclass(frozen=True)
class Table:
    """A peer group's coaching input, one entry per rep (in a fixed order): per metric the values
    (NaN: no value) and, for rates, the denominators (`samples`, exact; `_sample_floats` for the
    qualification test, exact there too since `min_sample` is far below 2**53). `volumes` are the
    funnel's counts (priorities.VOLUMES) over the window of `days` days, prorated like the activity
    metrics; `days` also turns impacts into monthly ones."""

    rep_ids: list[str]
    teams: list[str | None]
    values: dict[str, Floats]
    samples: dict[str, list[int | None]]
    volumes: dict[str, Floats] = field(default_factory=dict)
    days: int = DEFAULT_DAYS
    _sample_floats: dict[str, Floats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.volumes:
            self.volumes.update(volumes_of(self.values, self.samples, np.ones(len(self.rep_ids))))

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
    """A group's coaching, one row per rep of its table. `metrics` (the funnel's extra ones too) and
    `focus` are SPEC 5.2's: every peer of the scope, the counts as they are. `priorities` are SPEC
    5.9's: the activity metrics prorated by the days each rep was employed in the window."""

    metrics: dict[str, stats.MetricStandings]
    focus: list[tuple[str, ...]]
    priorities: list[tuple[Priority, ...]]


def volumes_of(
    values: Mapping[str, Floats], samples: Mapping[str, Sequence[int | None]], scale: Floats
) -> dict[str, Floats]:
    """The funnel's counts (priorities.VOLUMES) of a table: the activity metrics as they are (already
    prorated), the counts behind the rates times `scale`, the reps' proration factors."""

    def count(name: str) -> Floats:
        counts = stats.floats(s or 0 for s in samples.get(name, [0] * len(scale)))
        prorated: Floats = counts * scale
        return prorated

    def activity(name: str) -> Floats:
        known: Floats = np.nan_to_num(values[name], nan=0.0)
        return known

    return {
        "dials": activity("dials"),
        "emails_sent": activity("emails_sent"),
        "meetings_booked": activity("meetings_booked"),
        "connects": count("meeting_rate"),
        "decided": count("win_rate"),
        "won": count("avg_deal_size"),
    }


def table_of(reps: Sequence[CoachingRep], days: int = DEFAULT_DAYS) -> Table:
    values: dict[str, Floats] = {}
    samples: dict[str, list[int | None]] = {}
    for name in (*COACHING_METRICS, *FUNNEL_EXTRA):
        observed = [rep.metrics.get(name, Observation(None)) for rep in reps]
        values[name] = stats.floats(_finite(o.value) for o in observed)
        if name in DENOMINATORS:
            samples[name] = [o.sample for o in observed]
    return Table([r.rep_id for r in reps], [r.team for r in reps], values, samples, days=days)


def coach_table(table: Table, *, min_sample: int, by_team: bool, prorated: Table | None = None) -> Coached:
    """Every rep's standing against the others of the table (with `by_team`, of its own team; a rep
    without a team then has no peers). O(reps x log reps) per metric, vectorised.

    `table` holds the counts as they are (SPEC 5.2: standings and focus), `prorated` the same reps
    with the activity metrics and funnel volumes prorated (SPEC 5.9: priorities); None when nobody
    is. A metric whose values the two share is ranked once."""
    groups = None
    if by_team:
        labels: dict[str | int, int] = {}
        # A rep without a team is a group of its own (int keys never collide with team names).
        keys = [team if team is not None else i for i, team in enumerate(table.teams)]
        groups = np.array([labels.setdefault(k, len(labels)) for k in keys], dtype=np.int64)

    def standings(t: Table, name: str) -> stats.MetricStandings:
        return stats.standings(t.values[name], t.qualified(name, min_sample), groups)

    names = (*COACHING_METRICS, *FUNNEL_EXTRA)
    per_metric = {name: standings(table, name) for name in names}
    whole = table if prorated is None else prorated
    whole_metric = {
        name: per_metric[name] if whole.values[name] is table.values[name] else standings(whole, name)
        for name in names
    }
    focus = focus_of(per_metric)
    return Coached(per_metric, focus, priorities_of(whole.values, whole.volumes, whole_metric, whole.days))


def coach_row(
    table: Table, i: int, *, min_sample: int, by_team: bool, prorated: Table | None = None
) -> Coached:
    """Row `i` of `coach_table` alone, as a one-row coaching: the same numbers (stats.against is the
    leave-one-out arithmetic), for an answer that needs one rep of its group (the coaching history's
    weeks) at the cost of one rep rather than all of them."""
    others = np.arange(len(table.rep_ids)) != i
    if by_team:
        team = table.teams[i]
        others &= np.array([team is not None and t == team for t in table.teams], dtype=np.bool_)

    def standings(t: Table, name: str) -> stats.MetricStandings:
        qualified = t.qualified(name, min_sample)
        found = stats.against(
            float(t.values[name][i]), bool(qualified[i]), t.values[name][qualified & others]
        )
        return stats.MetricStandings(
            np.array([found[0]], np.int64), *(np.array([x], np.float64) for x in found[1:])
        )

    names = (*COACHING_METRICS, *FUNNEL_EXTRA)
    per_metric = {name: standings(table, name) for name in names}
    whole = table if prorated is None else prorated
    whole_metric = {
        name: per_metric[name] if whole.values[name] is table.values[name] else standings(whole, name)
        for name in names
    }
    values = {name: whole.values[name][[i]] for name in names}
    volumes = {name: v[[i]] for name, v in whole.volumes.items()}
    return Coached(per_metric, focus_of(per_metric), priorities_of(values, volumes, whole_metric, whole.days))


def focus_of(per_metric: Mapping[str, stats.MetricStandings]) -> list[tuple[str, ...]]:
    """Each rep's (row's) focus (SPEC 5.2) from its standings."""
    picks = stats.focus(_scores(per_metric), FOCUS_THRESHOLD, MAX_FOCUS)
    return [tuple(COACHING_METRICS[c] for c in row) for row in picks]


def priorities_of(
    values: Mapping[str, Floats],
    volumes: Mapping[str, Floats],
    per_metric: Mapping[str, stats.MetricStandings],
    days: int,
) -> list[tuple[Priority, ...]]:
    """Each rep's (row's) priorities (SPEC 5.9) from its values, funnel volumes and standings."""
    return rank(COACHING_METRICS, values, volumes, per_metric, _scores(per_metric), days)


def _scores(per_metric: Mapping[str, stats.MetricStandings]) -> Floats:
    """The oriented z of every coached metric, one column each, one row per rep."""
    rows = len(per_metric[COACHING_METRICS[0]].z)
    scores: Floats = np.column_stack([_oriented(n, per_metric[n].z) for n in COACHING_METRICS]).reshape(
        rows, len(COACHING_METRICS)
    )
    return scores


def _oriented(name: str, z: Floats) -> Floats:
    """z with the gap negative: what `focus` ranks (lowest first)."""
    if name in TWO_SIDED:
        score: Floats = -np.abs(z)
        return score
    return -z if name in HIGHER_IS_WORSE else z


def standing_of(table: Table, coached: Coached, i: int, name: str, j: int | None = None) -> Standing:
    """Row `i` of the table on metric `name`, with its standing (SPEC 5.2) from row `j` of `coached`
    (default: the same row; `coach_row` has one row)."""
    m = coached.metrics[name]
    j = i if j is None else j
    sample = table.samples[name][i] if name in DENOMINATORS else None
    return Standing(
        stats.nullable(table.values[name][i]),
        sample,
        int(m.peers[j]),
        stats.nullable(m.median[j]),
        stats.nullable(m.percentile[j]),
        stats.nullable(m.gap[j]),
        stats.nullable(m.z[j]),
    )


def rep_coaching_of(table: Table, coached: Coached, i: int) -> RepCoaching:
    standings = {name: standing_of(table, coached, i, name) for name in COACHING_METRICS}
    return RepCoaching(table.rep_ids[i], table.teams[i], standings, coached.focus[i], coached.priorities[i])


def coach_scope(
    reps: Sequence[CoachingRep],
    *,
    min_sample: int = DEFAULT_MIN_SAMPLE,
    by_team: bool = False,
    days: int = DEFAULT_DAYS,
) -> list[RepCoaching]:
    """Every rep's standing against the others of `reps`, in input order.

    `reps` are the active reps of the scope (rep ids unique). With `by_team`, each rep is compared
    with the other reps of its own team only; a rep without a team then has no peers.
    """
    table = table_of(reps, days)
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


def _finite(value: float | int | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
