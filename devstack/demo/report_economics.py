"""The unit-economics section of `salesloop report` (SPEC 5.10), read through the API like the rest.

Three tables: the MRR movements of each calendar month of the report's window, with the window's
retention; the window's unit economics by first-touch channel (ARPA, churn, LTV, CAC, months to
pay CAC back and LTV:CAC, against Skok's LTV > 3 x CAC and payback under 12 months); and Roberge's
stage of fit over the same window, with premature scaling. A table the key may not read (403) or
the API does not serve (404) says so instead.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from devstack.demo import report_kit
from devstack.demo.report_kit import Answer, get, missing_scopes, money, pct, print_renderables, unavailable

TITLES = ("MRR movements", "Unit economics by channel", "Stage of fit")
LTV_TO_CAC = 3.0  # Skok: LTV should be more than three times CAC ...
PAYBACK_MONTHS = 12.0  # ... and CAC paid back within a year
LIGHTS = {"green": "bold green", "red": "bold red", "unknown": "yellow"}
LEFT = ("", "why")  # columns aligned left besides the first
FIT_LIGHTS = (("product_market", "product/market"), ("go_to_market", "go-to-market"), ("scale", "scale"))
MOVEMENTS = (
    ("new_mrr", "new"),
    ("expansion_mrr", "expansion"),
    ("reactivation_mrr", "reactivation"),
    ("contraction_mrr", "contraction"),
    ("churned_mrr", "churned"),
)


@dataclass
class EconomicsData:
    summary: Answer
    fit: Answer
    months: dict[str, Answer] = field(default_factory=dict)  # YYYY-MM -> that month's summary


def months_of(start: date, end: date) -> list[tuple[str, date, date]]:
    """The calendar months from `start` to `end` (inclusive), each cut to them: (YYYY-MM, first, last)."""
    out = []
    first = start
    while first <= end:
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
        last = min(end, following - timedelta(days=1))
        out.append((f"{first:%Y-%m}", first, last))
        first = following
    return out


async def fetch(api_url: str, api_key: str, window: Mapping[str, str]) -> EconomicsData:
    """The window's summary and fit, then a summary per calendar month the window touches."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=api_url.rstrip("/"), headers=headers, timeout=30.0) as client:
        summary, fit = await asyncio.gather(
            get(client, "/v1/economics/summary", window), get(client, "/v1/planning/fit", window)
        )
        data = EconomicsData(summary, fit)
        if summary.body is not None:
            start, end = date.fromisoformat(summary.body["from"]), date.fromisoformat(summary.body["to"])
            months = months_of(start, end)
            answers = await asyncio.gather(
                *(
                    get(client, "/v1/economics/summary", {"from": first.isoformat(), "to": last.isoformat()})
                    for _, first, last in months
                )
            )
            data.months = {label: a for (label, _, _), a in zip(months, answers, strict=True)}
    return data


def render(data: EconomicsData) -> list[RenderableType]:
    out: list[RenderableType] = []
    if data.summary.body is None:
        out += [unavailable(TITLES[0], data.summary), unavailable(TITLES[1], data.summary)]
    else:
        out += [movements_table(data.summary.body, data.months), channels_table(data.summary.body)]
    out.append(fit_table(data.fit.body) if data.fit.body is not None else unavailable(TITLES[2], data.fit))
    return out


def problems(data: EconomicsData) -> list[str]:
    return missing_scopes("Economics", (data.summary, data.fit))


def movements_table(window: Mapping[str, Any], months: Mapping[str, Answer]) -> Table:
    columns = ("month", "MRR at start", *(title for _, title in MOVEMENTS), "MRR at end", "customers")
    table = report_kit.table(TITLES[0], columns, LEFT)
    for label, answer in months.items():
        f = (answer.body or {}).get("overall")
        if f is None:
            table.add_row(label, *["-"] * (len(columns) - 1))
            continue
        table.add_row(label, *_movement_cells(f))
    table.add_section()
    overall = window.get("overall", {})
    table.add_row(f"{window.get('from')} to {window.get('to')}", *_movement_cells(overall))
    table.caption = (
        f"logo retention {pct(overall.get('logo_retention'))}, net revenue retention "
        f"{pct(overall.get('net_revenue_retention'))}, gross revenue retention "
        f"{pct(overall.get('gross_revenue_retention'))} over the window (customers at its start); "
        "customers: at the end (new, churned)"
    )
    return table


def _movement_cells(f: Mapping[str, Any]) -> list[str | Text]:
    churned = f.get("churned_mrr") or 0.0
    return [
        money(f.get("mrr_start")),
        *(money(f.get(key)) for key, _ in MOVEMENTS[:-1]),
        Text(money(churned), style="red" if churned else ""),
        money(f.get("mrr_end")),
        f"{f.get('customers_end', 0):,} (+{f.get('customers_new', 0)}, -{f.get('customers_churned', 0)})",
    ]


def channels_table(body: Mapping[str, Any]) -> Table:
    columns = ("channel", "new", "ARPA", "churn/month", "LTV", "CAC", "payback months", "LTV:CAC")
    table = report_kit.table(TITLES[1], columns, LEFT)
    channels = body.get("channels", {})
    ranked = sorted(channels.items(), key=lambda kv: _sort_key(kv[1].get("cac_payback_months")))
    for name, f in [*ranked, ("all", body.get("overall", {}))]:
        if name == "all":
            table.add_section()
        payback, ratio = f.get("cac_payback_months"), f.get("ltv_to_cac")
        table.add_row(
            name, f"{f.get('customers_new', 0):,}", money(f.get("arpa")), pct(f.get("monthly_churn")),
            money(f.get("ltv")), money(f.get("cac")),
            Text(_number(payback), style=_style(payback is not None and payback > PAYBACK_MONTHS)),
            Text(_number(ratio), style=_style(ratio is not None and ratio < LTV_TO_CAC)),
        )  # fmt: skip
    margin = (body.get("settings") or {}).get("gross_margin")
    table.caption = (
        "by first-touch channel, fastest payback first; payback = CAC / (ARPA x gross margin "
        f"{pct(margin)}); red: payback over {PAYBACK_MONTHS:.0f} months or LTV under "
        f"{LTV_TO_CAC:.0f} x CAC. CAC: the channel's spend and an equal share of sales cost per new "
        "customer; '-' where nothing can be divided (no new customers, or no churn for LTV)"
    )
    return table


def fit_table(body: Mapping[str, Any]) -> Table:
    table = report_kit.table(TITLES[2], ("light", "", "why"), LEFT)
    for key, name in FIT_LIGHTS:
        light = (body.get(key) or {}).get("light", "unknown")
        table.add_row(name, Text(light, style=LIGHTS.get(light, "")), (body.get(key) or {}).get("reason", ""))
    table.add_section()
    premature = body.get("premature_scaling")
    flag = ("yes", "bold red") if premature is True else ("no", "bold green") if premature is False else None
    flag = flag or ("unknown", "yellow")
    h = body.get("headcount") or {}
    growth = h.get("growth")
    table.add_row(
        "premature scaling", Text(flag[0], style=flag[1]),
        f"sales headcount {h.get('quarter_ago', '-')} a quarter ago, {h.get('now', '-')} now"
        + (f" ({growth:+.0%})" if growth is not None else "")
        + "; premature when it grew over 25 % while product/market or go-to-market is red",
    )  # fmt: skip
    table.caption = f"Roberge's stage of fit, {body.get('from')} to {body.get('to')} (retention annualised)"
    return table


def print_section(console: Console, api_url: str, api_key: str, window: Mapping[str, str]) -> list[str]:
    """Fetch and print the economics section; returns the scopes the key lacked, as messages."""
    data = asyncio.run(fetch(api_url, api_key, window))
    print_renderables(console, render(data))
    return problems(data)


def _sort_key(value: float | None) -> tuple[bool, float]:
    return (value is None, value if value is not None else 0.0)


def _style(bad: bool) -> str:
    return "bold red" if bad else ""


def _number(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1f}"
