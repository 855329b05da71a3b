"""`salesloop report`'s coaching section: what to coach each rep on first, and whether it is moving.

Each rep with priorities (SPEC 5.9: at most two gaps, ranked by the revenue closing them would add
per month) gets one row: the metric, the rep's value against its peer median, the gap, the monthly
impact, the peer group (its tenure peers while it ramps), and a trend from
`GET /v1/coaching/reps/{rep_id}/history`: the rep's standing against the peer median week by week
(each week's 28-day coaching window), as a sparkline with the gap of the first and the last week.
Every z-flag (`focus`) is left to the API: a manager coaches one or two things.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from rich.console import RenderableType
from rich.table import Table

from services.api.coaching.service import HIGHER_IS_WORSE, TWO_SIDED

TITLE = "Coaching priorities"
HISTORY_WEEKS = 8
BARS = "▁▂▃▄▅▆▇█"


def coached_reps(team: Mapping[str, Any]) -> list[str]:
    """The reps of the team answer that have priorities: those whose history the section shows."""
    return [r["rep_id"] for r in team.get("reps", []) if r.get("priorities")]


def history_request(rep_id: str) -> tuple[str, dict[str, str]]:
    """The path and query of a rep's coaching history, as the section reads it."""
    return f"/v1/coaching/reps/{quote(rep_id, safe='')}/history", {"weeks": str(HISTORY_WEEKS)}


def priorities_table(team: Mapping[str, Any], histories: Mapping[str, Mapping[str, Any]]) -> RenderableType:
    """One row per rep with priorities, the reps whose first priority is worth the most first."""
    table = Table(title=TITLE, title_justify="left", caption_justify="left")
    for column in ("rep", "peers", "priority", "value vs peer median", "gap", "impact/month"):
        table.add_column(column, justify="right" if column in ("gap", "impact/month") else "left")
    table.add_column(f"last {HISTORY_WEEKS} weeks")
    reps = team.get("reps", [])
    coached = [r for r in reps if r.get("priorities")]
    coached.sort(key=lambda r: (-_impact(r["priorities"][0]), r["rep_id"]))
    for rep in coached:
        priorities = rep["priorities"]
        tracks = _tracks(histories.get(rep["rep_id"], {}))
        table.add_row(
            rep["rep_id"],
            rep.get("peer_group") or "",
            "\n".join(p["metric"] for p in priorities),
            "\n".join(_versus(p) for p in priorities),
            "\n".join(_signed_pct(p.get("gap_pct")) for p in priorities),
            "\n".join(_money(p.get("impact_monthly")) for p in priorities),
            "\n".join(trend(p["metric"], tracks.get(p["metric"], ())) for p in priorities),
        )
    table.caption = (
        f"{len(coached)} of {len(reps)} reps have priorities: at most two gaps each, at least 1 robust "
        "standard deviation and 10% from the peer median, ranked by the revenue per month reaching the "
        "median would add through the rep's own funnel (no impact: talk and conversation metrics). "
        "Peers tenure_month_N: hires at the same month of tenure. Trend: the rep against the peer "
        "median each week (28-day windows), higher is better, with the gap then -> now"
    )
    return table


def trend(metric: str, weeks: Sequence[Mapping[str, Any]]) -> str:
    """A sparkline of the rep's standing (the gap turned so that higher is better) over `weeks`, and
    the gap of the first and last week that have one; '-' without any."""
    standing = [_standing(metric, w.get("gap_pct")) for w in weeks]
    known = [s for s in standing if s is not None]
    if not known:
        return "-"
    low, high = min(known), max(known)
    spark = "".join(" " if s is None else _bar(s, low, high) for s in standing)
    gaps = [w["gap_pct"] for w in weeks if w.get("gap_pct") is not None]
    return f"{spark} {_signed_pct(gaps[0])} -> {_signed_pct(gaps[-1])}"


def metric_value(metric: str, value: float | None) -> str:
    """A coaching metric's value as a manager reads it: rates as percentages, sizes in money."""
    if value is None:
        return "-"
    if metric.endswith("_rate") or metric in ("talk_ratio", "rep_talk_share"):
        return f"{100 * value:.1f}%"
    if metric == "longest_monologue_s":
        return f"{value:,.0f} s"
    if metric.endswith("_per_call"):
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _versus(priority: Mapping[str, Any]) -> str:
    metric = priority["metric"]
    value, median = priority.get("value"), priority.get("peer_median")
    return f"{metric_value(metric, value)} vs {metric_value(metric, median)}"


def _tracks(history: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """Per metric that was a priority in the history, its weeks from the first one it was."""
    return {p["metric"]: list(p.get("weeks", [])) for p in history.get("progress", [])}


def _standing(metric: str, gap_pct: float | None) -> float | None:
    if gap_pct is None:
        return None
    if metric in TWO_SIDED:
        return -abs(gap_pct)
    return -gap_pct if metric in HIGHER_IS_WORSE else gap_pct


def _bar(value: float, low: float, high: float) -> str:
    if high - low < 1e-12:
        return BARS[len(BARS) // 2]
    return BARS[round((value - low) / (high - low) * (len(BARS) - 1))]


def _impact(priority: Mapping[str, Any]) -> float:
    impact = priority.get("impact_monthly")
    return float(impact) if isinstance(impact, int | float) else -1.0


def _signed_pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.0f}%"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
