"""Sums of `rollup_rep_daily` over a window, and the SPEC 5.1 metrics computed from them.

Every domain that reports rep metrics (reps, hiring outcomes, training ramps) reads the same sums
and applies the same formulas, so a metric means one thing everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Numeric

from services.api.kit.errors import InvalidInput
from services.api.kit.windows import quota_over
from services.core.models import RepDaily

Number = int | float | Decimal

# The columns of `rollup_rep_daily` that `metrics_from_sums` reads.
METRIC_COLUMNS: tuple[str, ...] = (
    "dials",
    "connects",
    "talk_time_s",
    "rep_talk_s",
    "buyer_talk_s",
    "emails_sent",
    "email_replies",
    "emails_opened",
    "emails_clicked",
    "emails_bounced",
    "meetings_booked",
    "meetings_held",
    "deals_created",
    "deals_won",
    "deals_lost",
    "revenue_won",
)

# The SPEC 5.1 metrics, in the order of every answer that lists them.
METRICS: tuple[str, ...] = (
    "dials",
    "connects",
    "connect_rate",
    "talk_time_s",
    "talk_ratio",
    "emails_sent",
    "email_replies",
    "reply_rate",
    "emails_opened",
    "emails_clicked",
    "emails_bounced",
    "open_rate",
    "click_rate",
    "bounce_rate",
    "meetings_booked",
    "meetings_held",
    "meeting_rate",
    "show_rate",
    "deals_created",
    "deals_won",
    "deals_lost",
    "win_rate",
    "revenue_won",
    "avg_deal_size",
    "quota_attainment",
)


def check_metric(field: str, metric: str) -> None:
    """`InvalidInput` naming the query parameter `field` unless `metric` is a SPEC 5.1 metric."""
    if metric not in METRICS:
        raise InvalidInput(
            field, f"must be a metric of GET /v1/reps/{{rep_id}}/metrics: {', '.join(METRICS)}"
        )


@dataclass(frozen=True)
class CounterSums:
    """Counter sums over a window, with what the metric formulas and the answer need besides."""

    start: date
    end: date
    as_of: datetime | None
    quota_monthly: Decimal | None
    sums: dict[str, Any]

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def sums_sql(columns: Sequence[str], rollup: str = "d") -> str:
    """`columns` of `rollup_rep_daily` (aliased `rollup`) summed: counts as bigint, amounts as float8.

    Amounts are summed exactly as numeric and only then rounded to the nearest double, the value
    `float()` gives for the Decimal: the formulas compute in floats anyway.
    """
    out = []
    for name in columns:
        numeric = isinstance(RepDaily.__table__.c[name].type, Numeric)
        out.append(f"coalesce(sum({rollup}.{name}), 0)::{'float8' if numeric else 'bigint'} AS {name}")
    return ",\n       ".join(out)


def ratio(numerator: Number, denominator: Number) -> float | None:
    """A rate; null (not 0) when there is nothing to divide by."""
    if denominator == 0:
        return None
    return float(numerator) / float(denominator)


def metrics_from_sums(
    sums: Mapping[str, Number], *, quota_monthly: Number | None, days: int
) -> dict[str, int | float | None]:
    """SPEC 5.1 from counter sums of `rollup_rep_daily` (one rep's, or several reps' added up).

    `rep_talk_s`/`buyer_talk_s` are sums over the calls that have both, so `talk_ratio` is their
    share directly. `quota_monthly` is the (summed) monthly quota; `days` the window's length.
    Missing columns count as 0.
    """

    def count(name: str) -> int:
        return int(sums.get(name, 0))

    def amount(name: str) -> float:
        return float(sums.get(name, 0))

    dials, connects = count("dials"), count("connects")
    rep_talk, buyer_talk = amount("rep_talk_s"), amount("buyer_talk_s")
    emails_sent, email_replies = count("emails_sent"), count("email_replies")
    opened, clicked, bounced = count("emails_opened"), count("emails_clicked"), count("emails_bounced")
    booked, held = count("meetings_booked"), count("meetings_held")
    won, lost = count("deals_won"), count("deals_lost")
    revenue = amount("revenue_won")
    target = None if quota_monthly is None else quota_over(float(quota_monthly), days)
    return {
        "dials": dials,
        "connects": connects,
        "connect_rate": ratio(connects, dials),
        "talk_time_s": amount("talk_time_s"),
        "talk_ratio": ratio(rep_talk, rep_talk + buyer_talk),
        "emails_sent": emails_sent,
        "email_replies": email_replies,
        "reply_rate": ratio(email_replies, emails_sent),
        "emails_opened": opened,
        "emails_clicked": clicked,
        "emails_bounced": bounced,
        "open_rate": ratio(opened, emails_sent),
        "click_rate": ratio(clicked, emails_sent),
        "bounce_rate": ratio(bounced, emails_sent),
        "meetings_booked": booked,
        "meetings_held": held,
        "meeting_rate": ratio(booked, connects),
        "show_rate": ratio(held, booked),
        "deals_created": count("deals_created"),
        "deals_won": won,
        "deals_lost": lost,
        "win_rate": ratio(won, won + lost),
        "revenue_won": revenue,
        "avg_deal_size": ratio(revenue, won),
        "quota_attainment": None if target is None else ratio(revenue, target),
    }


def window_metrics(found: CounterSums) -> dict[str, int | float | None]:
    """The metrics of sums read over a window."""
    return metrics_from_sums(found.sums, quota_monthly=found.quota_monthly, days=found.days)
