"""`salesloop report`: what the feedback API says about a tenant, as tables in the terminal.

Five sections, one per consumer of the numbers: who to coach on what first and whether it is moving
(report_coaching.py), which hiring traits predict quota attainment, how fast each hire cohort ramps,
what each acquisition channel yields, and how each rep's calls sound (talk share, monologues,
questions, Voss labels). A section the key may not read (403) or the API does not serve (404) says
so instead of its table.
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from devstack.demo import report_coaching, report_economics, report_pipeline
from devstack.demo.send import error_message

RAMP_MONTHS = 6
RECENT_COHORT_DAYS = 365
DETAIL_CONCURRENCY = 8
SECTIONS = (report_coaching.TITLE, "Top hiring traits", "Ramp by cohort", "Channel quality", "Conversations")


class ReportError(Exception):
    """The report cannot be made at all: the API is unreachable or refuses the key."""


@dataclass
class Section:
    title: str
    body: dict[str, Any] | None = None
    problem: str | None = None  # why there is no body
    missing_scope: bool = False


@dataclass
class ReportData:
    coaching: Section
    hiring: Section
    ramp: Section
    channels: Section
    conversations: Section
    rep_history: dict[str, dict[str, Any]] = field(default_factory=dict)


async def fetch(api_url: str, api_key: str, window: Mapping[str, str]) -> ReportData:
    """Every answer the report needs; raises ReportError when nothing can be read.

    `window` is the API's window parameters: {"window": "90d"} or {"from": ..., "to": ...}.
    """
    headers = {"Authorization": f"Bearer {api_key}"}
    params = dict(window)
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), headers=headers, timeout=30.0) as client:

        async def get(title: str, path: str, query: Mapping[str, str]) -> Section:
            try:
                response = await client.get(path, params=dict(query))
            except httpx.HTTPError as exc:
                raise ReportError(f"cannot reach the API at {api_url}: {type(exc).__name__}") from exc
            if response.status_code == 401:
                raise ReportError(f"the API refused the key (401): {error_message(response)}")
            if response.status_code == 403:
                return Section(title, problem=error_message(response), missing_scope=True)
            if response.status_code == 404:
                return Section(title, problem=f"this API does not serve {path}")
            if response.status_code == 422:
                raise ReportError(f"the API refused the request: {error_message(response)}")
            if response.status_code != 200:
                return Section(
                    title, problem=f"{path} answered {response.status_code}: {error_message(response)}"
                )
            return Section(title, body=response.json())

        coaching, hiring, ramp, channels, conversations = await asyncio.gather(
            get(SECTIONS[0], "/v1/coaching/team", params),
            get(SECTIONS[1], "/v1/hiring/trait-correlations", {**params, "outcome": "quota_attainment"}),
            get(SECTIONS[2], "/v1/training/ramp", {"cohort": "month", "metric": "revenue_won"}),
            get(SECTIONS[3], "/v1/demand/channels", params),
            get(SECTIONS[4], "/v1/conversations/team", params),
        )
        data = ReportData(coaching, hiring, ramp, channels, conversations)
        if coaching.body is not None:
            gate = asyncio.Semaphore(DETAIL_CONCURRENCY)

            async def history(rep_id: str) -> None:
                async with gate:
                    section = await get(rep_id, *report_coaching.history_request(rep_id))
                if section.body is not None:
                    data.rep_history[rep_id] = section.body

            await asyncio.gather(*(history(r) for r in report_coaching.coached_reps(coaching.body)))
    return data


def render(data: ReportData, tenant: str | None) -> list[RenderableType]:
    window = _window_of(data)
    heading = f"salesloop report{f' for {tenant}' if tenant else ''}{f', {window}' if window else ''}"
    return [
        Text(heading, style="bold"),
        _section(data.coaching, lambda body: report_coaching.priorities_table(body, data.rep_history)),
        _section(data.hiring, hiring_table),
        _section(data.ramp, ramp_table),
        _section(data.channels, channels_table),
        _section(data.conversations, conversations_table),
    ]


def problems(data: ReportData) -> list[str]:
    """Sections the key may not read, as messages naming the scope the API asked for."""
    sections = (data.coaching, data.hiring, data.ramp, data.channels, data.conversations)
    return [f"{s.title}: {s.problem}" for s in sections if s.missing_scope]


def figures_table(title: str, columns: Sequence[str]) -> Table:
    """A table of one text column then figures, right-aligned."""
    table = Table(title=title, title_justify="left", caption_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="right" if i else "left")
    return table


def hiring_table(body: Mapping[str, Any]) -> RenderableType:
    table = figures_table(SECTIONS[1], ("trait", "r", "rho", "p", "n", "95% CI of r"))
    traits = body.get("traits", {})
    ranked = sorted(traits.items(), key=lambda kv: -(kv[1].get("r") if kv[1].get("r") is not None else -2.0))
    for name, c in ranked:
        ci = c.get("ci95")
        table.add_row(
            name + (" (too few reps)" if c.get("insufficient_data") else ""),
            _num(c.get("r"), 2),
            _num(c.get("rho"), 2),
            _p(c.get("p_value")),
            str(c.get("n", "")),
            f"{ci[0]:.2f} to {ci[1]:.2f}" if ci else "-",
        )
    table.caption = f"correlation of each scorecard trait with {body.get('outcome', 'the outcome')}"
    return table


def ramp_table(body: Mapping[str, Any]) -> RenderableType:
    month_columns = [f"month {k}" for k in range(RAMP_MONTHS)]
    table = figures_table(SECTIONS[2], ("cohort", "reps", *month_columns, "days to 1st win"))
    as_of = str(body.get("as_of") or "")[:10]
    end = date.fromisoformat(as_of) if as_of else datetime.now(UTC).date()
    first = end - timedelta(days=RECENT_COHORT_DAYS)
    cohorts = [c for c in body.get("cohorts", []) if c["cohort"] >= f"{first.year:04d}-{first.month:02d}"]
    for c in cohorts:
        months = {m["month"]: m.get("median") for m in c.get("months", [])}
        days = sorted(d for d in c.get("days_to_first_win", {}).values() if d is not None)
        table.add_row(
            c["cohort"],
            str(c.get("reps", "")),
            *(_money(months.get(k)) if k in months else "" for k in range(RAMP_MONTHS)),
            f"{days[len(days) // 2]} ({len(days)}/{len(c.get('days_to_first_win', {}))} won)"
            if days
            else "-",
        )
    table.caption = (
        f"median {body.get('metric', 'revenue_won')} per month since hire, hire cohorts of the last "
        f"{RECENT_COHORT_DAYS} days; days to first win: median over reps who won"
    )
    return table


def channels_table(body: Mapping[str, Any]) -> RenderableType:
    columns = ("channel", "leads", "lead->won", "revenue per lead", "speed to lead", "CAC")
    table = figures_table(SECTIONS[3], columns)
    channels = body.get("channels", {})
    ranked = sorted(channels.items(), key=lambda kv: -(kv[1].get("lead_to_won") or 0.0))
    for name, c in ranked:
        table.add_row(
            name,
            f"{c.get('leads', 0):,}",
            _pct(c.get("lead_to_won")),
            _money(c.get("revenue_per_lead")),
            _duration(c.get("speed_to_lead_median_s")),
            _money(c.get("cac")),
        )
    table.caption = (
        "best lead quality first; speed to lead is the median time to the first call, email or meeting"
    )
    return table


CONVERSATION_COLUMNS = (
    ("rep_talk_share", "talk share"),
    ("longest_monologue_s", "monologue"),
    ("questions_per_call", "questions"),
    ("label_per_call", "labels"),
    ("calibrated_question_per_call", "calibrated"),
)


def conversations_table(body: Mapping[str, Any]) -> RenderableType:
    """Every rep with analysed calls, most labels per call first, then the team's medians; the
    highest value of each column is bold."""
    table = figures_table(SECTIONS[4], ("rep", "calls", *(title for _, title in CONVERSATION_COLUMNS)))
    reps = [r for r in body.get("reps", []) if r.get("calls_analysed")]
    reps.sort(key=lambda r: (-(r["metrics"].get("label_per_call") or 0.0), r["rep_id"]))
    columns = {m: [r["metrics"].get(m) for r in reps] for m, _ in CONVERSATION_COLUMNS}
    top = {m: max((v for v in values if v is not None), default=None) for m, values in columns.items()}
    for rep in reps:
        values = [rep["metrics"].get(m) for m, _ in CONVERSATION_COLUMNS]
        cells = [
            Text(_talk_value(m, v), style="bold" if v == top[m] else "")
            for (m, _), v in zip(CONVERSATION_COLUMNS, values, strict=True)
        ]
        table.add_row(rep["rep_id"], f"{rep['calls_analysed']:,}", *cells)
    if reps:
        table.add_section()
        medians = [_talk_value(m, _median(columns[m])) for m, _ in CONVERSATION_COLUMNS]
        calls = _median([float(r["calls_analysed"]) for r in reps])
        table.add_row("median", f"{calls:,.0f}" if calls is not None else "-", *medians)
    table.caption = (
        f"{len(reps)} reps with analysed calls, most labels first. Means per call: the rep's share of "
        "the talking, the longest stretch the rep talked without the buyer taking a turn, the rep's "
        'questions, Voss labels ("it sounds like...") and calibrated questions (how / what)'
    )
    return table


def _talk_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "rep_talk_share":
        return _pct(value)
    if metric == "longest_monologue_s":
        return f"{value:,.0f} s"
    return f"{value:.1f}"


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _section(section: Section, build: Callable[[dict[str, Any]], RenderableType]) -> RenderableType:
    if section.body is None:
        return Group(
            Text(section.title, style="italic"), Text(f"  not available: {section.problem}", style="yellow")
        )
    renderable: RenderableType = build(section.body)
    return renderable


def _window_of(data: ReportData) -> str | None:
    for section in (data.coaching, data.hiring, data.channels):
        if section.body and section.body.get("from") and section.body.get("to"):
            return f"{section.body['from']} to {section.body['to']}"
    return None


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _money(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:,.0f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def print_report(
    console: Console,
    errors: Console,
    api_url: str,
    api_key: str,
    *,
    tenant: str | None,
    window: Mapping[str, str],
) -> int:
    """Fetch and print the report; returns the exit code (1 when a section lacked a scope)."""
    data = asyncio.run(fetch(api_url, api_key, window))
    for renderable in render(data, tenant):
        console.print(renderable)
        console.print()
    missing = problems(data) + report_pipeline.print_section(console, api_url, api_key, window)
    missing += report_economics.print_section(console, api_url, api_key, window)
    for line in missing:
        errors.print(f"[red]error:[/] {line}", highlight=False)
    return 1 if missing else 0
