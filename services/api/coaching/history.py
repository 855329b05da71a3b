"""Coaching over time (`GET /v1/coaching/reps/{rep_id}/history`): a rep's priorities week by week, and
for each metric that was one, its value against the peer median in the weeks that followed, so a
manager sees whether the gap closed.

A week's coaching is the coaching answer (answers.py) over the WINDOW_DAYS days ending on the week's
Sunday, with the defaults of that answer (tenant peers, min_sample 20): what a manager reading it that
Monday saw. Weeks are Monday to Sunday in the tenant's timezone. A week the api snapshot
(snapshots.py) is read as it was taken; a week without one (before the snapshots began, or not taken
yet: a week is snapshot two days after it ended) is computed now, from today's rollups and reps: the
groups of all such weeks in one statement (each rollup row read once, summed per week, the weeks per
window), each coached like the coaching answer.

The assembly (`history_out`, `progress`) is pure; `rep_history` reads and caches the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import orjson

from services.api.coaching import answers, history_queries
from services.api.coaching.history_schemas import (
    HistoryWeekOut,
    ProgressOut,
    ProgressWeekOut,
    RepHistoryOut,
)
from services.api.coaching.priorities import MIN_GAP
from services.api.coaching.schemas import PriorityOut
from services.api.coaching.service import DEFAULT_MIN_SAMPLE, HIGHER_IS_WORSE, TWO_SIDED
from services.api.kit.errors import NotFound
from services.api.kit.reads import AnswerKey, Reads, model_json, rollup_read
from services.api.kit.windows import WindowSpec

WINDOW_DAYS = 28  # four whole weeks: each week's coaching covers the four weeks it ends
DEFAULT_WEEKS = 12
MAX_WEEKS = 52
# A gap is closed once the rep is within MIN_GAP of the peer median (or past it): the size below
# which SPEC 5.9 makes no metric a priority.
CLOSED_GAP = MIN_GAP
SCOPE: Literal["tenant"] = "tenant"

HISTORY = "coaching_history"

Source = Literal["snapshot", "computed"]


@dataclass(frozen=True)
class WeekCoaching:
    """A rep's coaching in one week. `coaching` holds the coaching answer's `team`, `peer_group`,
    `focus`, `priorities` and `metrics`; None when the week's snapshot did not coach the rep (not an
    active rep then)."""

    week_start: date
    source: Source
    taken_at: datetime | None
    coaching: Mapping[str, Any] | None

    @property
    def week_end(self) -> date:
        return self.week_start + timedelta(days=6)


def window_of(week_start: date) -> tuple[date, date]:
    """The coaching window of the week starting on `week_start`: the WINDOW_DAYS days ending on its Sunday."""
    end = week_start + timedelta(days=6)
    return end - timedelta(days=WINDOW_DAYS - 1), end


def ended_weeks(today: date, count: int) -> list[date]:
    """The Mondays of the `count` weeks that ended before `today`, oldest first."""
    last = today - timedelta(days=today.weekday() + 7)
    return [last - timedelta(weeks=count - 1 - i) for i in range(count)]


def shortfall(metric: str, gap_pct: float | None) -> float | None:
    """How far the rep is on the wrong side of the peer median, as a share of it (<= 0: not behind),
    oriented as `focus` orients z: either direction for the talk shares, above for HIGHER_IS_WORSE."""
    if gap_pct is None:
        return None
    if metric in TWO_SIDED:
        return abs(gap_pct)
    return gap_pct if metric in HIGHER_IS_WORSE else -gap_pct


def _standing(week: WeekCoaching, metric: str) -> dict[str, Any]:
    found = (week.coaching or {}).get("metrics", {}).get(metric) or {}
    return {k: found.get(k) for k in ("value", "peer_median", "gap_pct", "z")}


def _priority_metrics(week: WeekCoaching) -> list[str]:
    return [p["metric"] for p in (week.coaching or {}).get("priorities", ())]


def _closed(metric: str, gap_pct: float | None) -> bool | None:
    short = shortfall(metric, gap_pct)
    return None if short is None else short < CLOSED_GAP


def progress(weeks: Sequence[WeekCoaching]) -> list[ProgressOut]:
    """For each metric that was a priority in some week (in the order they first were), its standing
    from that week to the last, and whether the gap is closed in the last week."""
    first: dict[str, int] = {}
    for i, week in enumerate(weeks):
        for metric in _priority_metrics(week):
            first.setdefault(metric, i)
    out = []
    for metric, since in first.items():
        track = [
            ProgressWeekOut(
                week_start=week.week_start,
                **_standing(week, metric),
                priority=metric in _priority_metrics(week),
            )
            for week in weeks[since:]
        ]
        closed = [_closed(metric, t.gap_pct) for t in track]
        # The closed run ending in the last week starts after the last week that was not closed.
        run = next((i for i in range(len(track), 0, -1) if not closed[i - 1]), 0)
        out.append(
            ProgressOut(
                metric=metric,
                since=track[0].week_start,
                weeks_as_priority=sum(t.priority for t in track),
                gap_pct_then=track[0].gap_pct,
                gap_pct_now=track[-1].gap_pct,
                closed=closed[-1],
                closed_since=track[run].week_start if closed[-1] else None,
                weeks=track,
            )
        )
    return out


def _week_out(week: WeekCoaching) -> HistoryWeekOut:
    start, end = window_of(week.week_start)
    c = week.coaching or {}
    return HistoryWeekOut(
        week_start=week.week_start,
        week_end=week.week_end,
        from_=start,
        to=end,
        source=week.source,
        taken_at=week.taken_at,
        coached=week.coaching is not None,
        peer_group=c.get("peer_group"),
        focus=list(c.get("focus", ())),
        priorities=[PriorityOut.model_validate(p) for p in c.get("priorities", ())],
    )


def history_out(rep_id: str, as_of: datetime | None, weeks: Sequence[WeekCoaching]) -> RepHistoryOut:
    """The answer over `weeks`, oldest first."""
    return RepHistoryOut(
        rep_id=rep_id,
        scope=SCOPE,
        min_sample=DEFAULT_MIN_SAMPLE,
        window_days=WINDOW_DAYS,
        as_of=as_of,
        weeks=[_week_out(w) for w in weeks],
        progress=progress(weeks),
    )


def window_spec(week_start: date) -> WindowSpec:
    start, end = window_of(week_start)
    return WindowSpec(days=WINDOW_DAYS, start=start, end=end)


async def rep_week_coaching(
    reads: Reads, tenant: str, rep_id: str, week_start: date, now: datetime
) -> dict[str, Any]:
    """The coaching answer of the rep over the week's window, computed now."""
    body = await answers.rep_coaching(
        reads,
        tenant=tenant,
        rep_id=rep_id,
        scope=SCOPE,
        min_sample=DEFAULT_MIN_SAMPLE,
        spec=window_spec(week_start),
        now=now,
    )
    found: dict[str, Any] = orjson.loads(body)
    return found


async def tenant_week_coaching(
    reads: Reads, tenant: str, week_start: date, now: datetime
) -> dict[str, dict[str, Any]]:
    """Every active rep's coaching answer over the week's window, by rep id: what a snapshot keeps.
    The reps are those the team view lists; each answer is the rep's own view, whose group read the
    answers share while nothing is committed in between."""
    spec = window_spec(week_start)
    try:
        team = orjson.loads(
            await answers.team_coaching(
                reads,
                tenant=tenant,
                scope=SCOPE,
                team=None,
                min_sample=DEFAULT_MIN_SAMPLE,
                spec=spec,
                now=now,
            )
        )
    except NotFound:
        return {}  # the tenant is gone
    out = {}
    for rep in team["reps"]:
        try:
            out[rep["rep_id"]] = await rep_week_coaching(reads, tenant, rep["rep_id"], week_start, now)
        except NotFound:
            continue  # removed since
    return out


async def rep_history(reads: Reads, *, tenant: str, rep_id: str, weeks: int, now: datetime) -> bytes:
    """The JSON of `RepHistoryOut` over the last `weeks` ended weeks; NotFound for an unknown rep."""
    probe = await history_queries.history_probe(reads.pool, tenant, rep_id, now)
    if probe is None:
        raise NotFound("no such rep")
    key = AnswerKey(probe.snapshot, (HISTORY, tenant, rep_id, weeks, probe.today))

    async def answer() -> tuple[AnswerKey, bytes]:
        mondays = ended_weeks(probe.today, weeks)
        rows = await history_queries.rep_weeks(reads.pool, tenant, rep_id, mondays)
        taken = {r.week_start: WeekCoaching(r.week_start, "snapshot", r.taken_at, r.coaching) for r in rows}
        computed = await computed_weeks(reads, tenant, rep_id, [m for m in mondays if m not in taken], now)
        found = [taken.get(m) or computed[m] for m in mondays]
        return key, model_json(history_out(rep_id, probe.as_of, found))

    return await reads.cache.get(HISTORY, key, answer)


async def computed_weeks(
    reads: Reads, tenant: str, rep_id: str, mondays: Sequence[date], now: datetime
) -> dict[date, WeekCoaching]:
    """The rep's coaching in the weeks of `mondays` (oldest first) computed now: the groups of every
    week from the first to the last read in one statement, each coached as the coaching answer does."""
    if not mondays:
        return {}
    first = mondays[0]
    with rollup_read(HISTORY):
        groups = await history_queries.weeks_sums(
            reads.pool,
            tenant,
            rep_id,
            window_of(first)[0],
            (mondays[-1] - first).days // 7 + 1,
            WINDOW_DAYS // 7,
            now,
        )
    out = {}
    for monday in mondays:
        body = await answers.rep_answer(
            reads,
            groups[(monday - first).days // 7],
            tenant=tenant,
            rep_id=rep_id,
            scope=SCOPE,
            min_sample=DEFAULT_MIN_SAMPLE,
            now=now,
        )
        out[monday] = WeekCoaching(monday, "computed", None, orjson.loads(body))
    return out
