"""Coaching priorities (SPEC 5.9): of the gaps a rep has, the one or two worth the most revenue.

`focus` ranks gaps by z alone, so a rep far below its peers on something worth little (a handful
of emails in a team that sells by phone) is told to fix that first. A priority must also be a real
gap (at least 10 % from the peer median, not a z blown up by peers who barely differ) and is ranked
by what closing it would earn: the revenue the rep would add per month by reaching the peer median
on that metric alone, through the rep's own funnel

    dials -> connects -> meetings booked -> meetings held -> deals created -> deals won x deal size
    emails sent -> replies --^

Each factor of the funnel is the rep's own; where the rep has none (a rate over 0) the peers'
median stands in, and 0 where they have none either. Metrics with no path to revenue (talk ratio,
the conversation metrics) have no impact and rank after those that have one.

Everything is vectorised over reps (rows): the team view ranks 200 reps at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from services.api.coaching.stats import Floats, MetricStandings, nullable

# SPEC 5.9: impact_monthly = revenue over the window / (window days / 30.4375).
DAYS_PER_MONTH = 30.4375
MIN_GAP = 0.10
MAX_PRIORITIES = 2

# The metrics with a path to revenue; every other coached metric has impact_monthly null.
FUNNEL_METRICS: tuple[str, ...] = (
    "dials",
    "connect_rate",
    "emails_sent",
    "reply_rate",
    "meeting_rate",
    "meetings_booked",
    "show_rate",
    "win_rate",
    "avg_deal_size",
)
# The factors of the funnel: the funnel metrics' rates and deals created per meeting held.
FACTORS: tuple[str, ...] = (
    "connect_rate",
    "reply_rate",
    "meeting_rate",
    "show_rate",
    "deals_per_held",
    "win_rate",
    "avg_deal_size",
)
# The volumes the funnel multiplies: counts over the window, prorated like the activity metrics.
VOLUMES: tuple[str, ...] = ("dials", "emails_sent", "connects", "meetings_booked", "decided", "won")


@dataclass(frozen=True)
class Priority:
    """One priority of a rep (SPEC 5.9): the metric's standing and its monthly revenue impact."""

    metric: str
    value: float | None
    peer_median: float | None
    z: float | None
    gap_pct: float | None
    impact_monthly: float | None


def factor(value: Floats, peer_median: Floats) -> Floats:
    """A funnel factor per rep: its own value, else the peers' median, else 0."""
    own: Floats = np.where(np.isnan(value), np.where(np.isnan(peer_median), 0.0, peer_median), value)
    return own


def impacts(
    values: Mapping[str, Floats],
    medians: Mapping[str, Floats],
    volumes: Mapping[str, Floats],
    days: int,
) -> dict[str, Floats]:
    """Per funnel metric, each rep's revenue per month from reaching the peer median on it alone.

    `values` and `medians` hold each rep's value and peer median of every funnel metric and factor
    (NaN: none); `volumes` the counts of VOLUMES. NaN where the rep has no value or no peer median.
    """
    f = {name: factor(values[name], medians[name]) for name in FACTORS}
    # One more connect or reply, meeting booked, meeting held: what each is worth in the end.
    per_connect = (
        f["meeting_rate"] * f["show_rate"] * f["deals_per_held"] * f["win_rate"] * f["avg_deal_size"]
    )
    per_meeting = f["show_rate"] * f["deals_per_held"] * f["win_rate"] * f["avg_deal_size"]
    per_held = f["deals_per_held"] * f["win_rate"] * f["avg_deal_size"]

    def delta(name: str) -> Floats:
        gap: Floats = medians[name] - values[name]
        return gap

    v = volumes
    revenue = {
        "dials": delta("dials") * f["connect_rate"] * per_connect,
        "connect_rate": v["dials"] * delta("connect_rate") * per_connect,
        "emails_sent": delta("emails_sent") * f["reply_rate"] * per_connect,
        "reply_rate": v["emails_sent"] * delta("reply_rate") * per_connect,
        "meeting_rate": v["connects"] * delta("meeting_rate") * per_meeting,
        "meetings_booked": delta("meetings_booked") * per_meeting,
        "show_rate": v["meetings_booked"] * delta("show_rate") * per_held,
        "win_rate": v["decided"] * delta("win_rate") * f["avg_deal_size"],
        "avg_deal_size": v["won"] * delta("avg_deal_size"),
    }
    months = days / DAYS_PER_MONTH
    return {name: r / months for name, r in revenue.items()}


def pick(names: Sequence[str], scores: Floats, gaps: Floats, impact: Floats) -> list[list[int]]:
    """Per rep (row), the columns of `names` that are priorities, best first, at most MAX_PRIORITIES.

    `scores` are the z-scores oriented as focus reads them (a gap is negative), `gaps` the gap_pct
    and `impact` the monthly impact (NaN: no funnel path), one column per name. A priority has a
    score of at most -1 and |gap| of at least MIN_GAP; the largest impact comes first, those without
    one last, ties by the score (most negative first), then by the order of `names`.
    """
    with np.errstate(invalid="ignore"):
        eligible = (scores <= -1.0) & (np.abs(gaps) >= MIN_GAP)
    no_impact = np.isnan(impact)
    columns = np.broadcast_to(np.arange(len(names)), scores.shape)
    # np.lexsort sorts by the last key first.
    keys = (columns, scores, np.where(no_impact, 0.0, -impact), no_impact, ~eligible)
    order = np.lexsort(keys, axis=-1)[:, :MAX_PRIORITIES]
    picked = np.take_along_axis(eligible, order, axis=1)
    return [
        [int(c) for c, ok in zip(row, keep, strict=True) if ok]
        for row, keep in zip(order, picked, strict=True)
    ]


def rank(
    names: Sequence[str],
    values: Mapping[str, Floats],
    volumes: Mapping[str, Floats],
    standings: Mapping[str, MetricStandings],
    scores: Floats,
    days: int,
) -> list[tuple[Priority, ...]]:
    """Every rep's priorities among the coached metrics `names` (`scores`: their oriented z, one
    column each). `values`, `standings` hold the rows' values and standings of `names` and of the
    funnel's factors."""
    medians = {name: standings[name].median for name in standings}
    found = impacts(values, medians, volumes, days)
    impact = np.full(scores.shape, np.nan)
    for c, name in enumerate(names):
        if name in found:
            impact[:, c] = found[name]
    gaps = np.column_stack([standings[name].gap for name in names]).reshape(scores.shape)
    out = []
    for row, columns in enumerate(pick(names, scores, gaps, impact)):
        out.append(tuple(_priority(names[c], values, standings, impact[row, c], row) for c in columns))
    return out


def _priority(
    name: str, values: Mapping[str, Floats], standings: Mapping[str, MetricStandings], impact: float, row: int
) -> Priority:
    s = standings[name]
    return Priority(
        name,
        nullable(values[name][row]),
        nullable(s.median[row]),
        nullable(s.z[row]),
        nullable(s.gap[row]),
        nullable(impact),
    )
