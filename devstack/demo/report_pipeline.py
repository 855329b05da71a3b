"""The pipeline section of `salesloop report` (SPEC 5.8), read through the API like the rest.

Five tables: how deals move through each stage over the report's window; the reps whose deals stay
much longer in a stage than the team's (their 90th percentile of days against the team's); the
forecast of the current and the next quarter with their coverage; the deals slipped from the current
quarter; and the stale deals, with who holds most of them. A table the key may not read (403) or the
API does not serve (404) says so instead.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from devstack.demo import report_kit
from devstack.demo.report_kit import Answer, missing_scopes, money, pct, print_renderables, unavailable

TITLES = ("Pipeline by stage", "Slow stages by rep", "Forecast", "Slipped deals", "Stale deals")
SLOW_RATIO = 1.5  # a rep's stage p90 at least this many times the team's is listed
SLOW_MIN_STAYS = 5  # ... over at least this many deals entering the stage
DEALS_LISTED = 10
CONCURRENCY = 8


@dataclass
class PipelineData:
    stages: Answer
    forecasts: dict[str, Answer]  # period -> answer: the current quarter, then the next
    slipped: Answer
    stale: Answer
    by_rep: dict[str, dict[str, Any]] = field(default_factory=dict)  # rep_id -> its stages answer


def quarters(today: date) -> tuple[str, str]:
    """The labels of the quarter `today` is in and of the next one."""
    number = (today.month - 1) // 3 + 1
    following = (today.year + 1, 1) if number == 4 else (today.year, number + 1)
    return f"{today.year:04d}-Q{number}", f"{following[0]:04d}-Q{following[1]}"


async def fetch(api_url: str, api_key: str, window: Mapping[str, str], today: date) -> PipelineData:
    """Every pipeline answer the section shows; per-rep stage reports of every rep the API lists."""
    headers = {"Authorization": f"Bearer {api_key}"}
    current, following = quarters(today)
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), headers=headers, timeout=30.0) as client:

        def get(path: str, query: Mapping[str, str]) -> Awaitable[Answer]:
            return report_kit.get(client, path, query, gate)

        stages, now_q, next_q, slipped, stale, reps = await asyncio.gather(
            get("/v1/pipeline/stages", window),
            get("/v1/pipeline/forecast", {"period": current}),
            get("/v1/pipeline/forecast", {"period": following}),
            get("/v1/pipeline/deals", {"status": "slipped", "period": current, "limit": "1000"}),
            get("/v1/pipeline/deals", {"status": "stale", "limit": "1000"}),
            get("/v1/reps", {}),
        )
        data = PipelineData(stages, {current: now_q, following: next_q}, slipped, stale)
        if stages.body is not None and reps.body is not None:
            ids = [r["rep_id"] for r in reps.body.get("reps", [])]
            answers = await asyncio.gather(
                *(get("/v1/pipeline/stages", {**window, "rep_id": rep_id}) for rep_id in ids)
            )
            data.by_rep = {r: a.body for r, a in zip(ids, answers, strict=True) if a.body is not None}
    return data


def render(data: PipelineData) -> list[RenderableType]:
    return [
        _shown(TITLES[0], data.stages, lambda: stages_table(data.stages.body or {})),
        _shown(TITLES[1], data.stages, lambda: slow_table(data.stages.body or {}, data.by_rep)),
        *_forecast(data.forecasts),
        _shown(TITLES[3], data.slipped, lambda: deals_table(TITLES[3], data.slipped.body or {})),
        _shown(TITLES[4], data.stale, lambda: deals_table(TITLES[4], data.stale.body or {})),
    ]


def problems(data: PipelineData) -> list[str]:
    return missing_scopes("Pipeline", [data.stages, *data.forecasts.values(), data.slipped, data.stale])


def stages_table(body: Mapping[str, Any]) -> Table:
    columns = ("stage", "entered", "conversion", "won from stage", "median days", "p90 days", "open now")
    table = _table(TITLES[0], columns)
    for s in body.get("stages", []):
        table.add_row(
            s["stage"], f"{s['entered']:,}", pct(s.get("conversion")), pct(s.get("won_from_stage")),
            _days(s.get("median_days_in_stage")), _days(s.get("p90_days_in_stage")), f"{s['open_now']:,}",
        )  # fmt: skip
    table.caption = (
        f"deals created {body.get('from')} to {body.get('to')}: conversion = reached a later stage or won; "
        "days in stage over completed stays"
    )
    return table


def slow_stages(
    team: Mapping[str, Any], by_rep: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str, float, float]]:
    """(rep_id, stage, rep's p90, team's p90) where the rep's p90 is SLOW_RATIO times the team's or
    more, over at least SLOW_MIN_STAYS deals; the largest ratio first."""
    team_p90 = {s["stage"]: s.get("p90_days_in_stage") for s in team.get("stages", [])}
    found = []
    for rep_id, body in by_rep.items():
        for s in body.get("stages", []):
            mine, theirs = s.get("p90_days_in_stage"), team_p90.get(s["stage"])
            if mine is None or not theirs or s.get("entered", 0) < SLOW_MIN_STAYS:
                continue
            if mine >= SLOW_RATIO * theirs:
                found.append((rep_id, s["stage"], float(mine), float(theirs)))
    return sorted(found, key=lambda f: (-f[2] / f[3], f[0], f[1]))


def slow_table(team: Mapping[str, Any], by_rep: Mapping[str, Mapping[str, Any]]) -> Table:
    table = _table(TITLES[1], ("rep", "stage", "p90 days", "team p90 days", "times"))
    slow = slow_stages(team, by_rep)
    for rep_id, stage, mine, theirs in slow:
        table.add_row(rep_id, stage, _days(mine), _days(theirs), f"{mine / theirs:.1f}x")
    table.caption = (
        f"{len(slow)} rep and stage pairs whose 90th percentile of days in the stage is at least "
        f"{SLOW_RATIO}x the team's"
    )
    return table


def _forecast(forecasts: Mapping[str, Answer]) -> list[RenderableType]:
    failed = next((a for a in forecasts.values() if a.body is None), None)
    if failed is not None:
        return [unavailable(TITLES[2], failed)]
    columns = ("period", "open deals", "open amount", "weighted", "commit", "won", "quota", "coverage")
    table = _table(TITLES[2], (*columns, "projection"))
    for period, answer in forecasts.items():
        t = (answer.body or {}).get("total", {})
        coverage = t.get("coverage")
        table.add_row(
            period, f"{t.get('open_count', 0):,}", *(money(t.get(k)) for k in ("open_amount", "weighted",
            "commit", "won", "quota")),
            Text(_ratio(coverage), style="bold red" if coverage is not None and coverage < 1 else ""),
            money(t.get("projection")),
        )  # fmt: skip
    table.caption = (
        "open deals by their latest close date; coverage = open amount / (quota - won), under 1 "
        "(red) means the quarter cannot be made from its pipeline"
    )
    return [table]


def deals_table(title: str, body: Mapping[str, Any]) -> RenderableType:
    table = _table(title, ("deal", "rep", "stage", "amount", "days in stage", "close date", "was", "why"))
    for d in body.get("deals", [])[:DEALS_LISTED]:
        table.add_row(
            d["deal_id"], d.get("rep_id") or "-", d.get("stage") or "-", money(d.get("amount")),
            _days(d.get("days_in_stage")), d.get("close_date") or "-", d.get("previous_close_date") or "-",
            ", ".join(d.get("reasons", [])),
        )  # fmt: skip
    holders = Counter((d.get("rep_id"), d.get("stage")) for d in body.get("deals", []))
    top = ", ".join(f"{rep} in {stage} ({n})" for (rep, stage), n in holders.most_common(3))
    scope = f"from {body.get('period')}" if body.get("status") == "slipped" else "to date"
    table.caption = (
        f"{body.get('count', 0):,} deals {scope}, {money(body.get('amount'))} in all; the largest first"
        + (f"; most: {top}" if top else "")
    )
    return table


def print_section(console: Console, api_url: str, api_key: str, window: Mapping[str, str]) -> list[str]:
    """Fetch and print the pipeline section; returns the scopes the key lacked, as messages."""
    data = asyncio.run(fetch(api_url, api_key, window, datetime.now(UTC).date()))
    print_renderables(console, render(data))
    return problems(data)


def _shown(title: str, answer: Answer, build: Callable[[], RenderableType]) -> RenderableType:
    if answer.body is None:
        return unavailable(title, answer)
    renderable: RenderableType = build()
    return renderable


def _table(title: str, columns: Sequence[str]) -> Table:
    return report_kit.table(title, columns, ("rep", "stage", "why"))


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
