"""Rep registry and SPEC 5.1 metrics: the formulas are pure (`metrics_from_sums`), the rest wires queries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.deps import rollup_read
from services.api.reads import ReadPool, json_answer
from services.api.reps import queries
from services.api.reps.schemas import Aliases, Metrics, RepIn, RepOut, TeamMetricsOut
from services.api.windows import DAYS_PER_MONTH, WindowSpec
from services.core.events import ALIAS_KINDS
from services.core.http import ApiError

Number = int | float | Decimal

# The columns of `rollup_rep_daily` that `metrics_from_sums` reads.
METRIC_COLUMNS = (
    "dials",
    "connects",
    "talk_time_s",
    "rep_talk_s",
    "buyer_talk_s",
    "emails_sent",
    "email_replies",
    "meetings_booked",
    "meetings_held",
    "deals_created",
    "deals_won",
    "deals_lost",
    "revenue_won",
)


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
    share directly. `quota_monthly` is the (summed) monthly quota; `days` the window's length, of
    which a month is 365.25/12. Missing columns count as 0.
    """

    def count(name: str) -> int:
        return int(sums.get(name, 0))

    def amount(name: str) -> float:
        return float(sums.get(name, 0))

    dials, connects = count("dials"), count("connects")
    rep_talk, buyer_talk = amount("rep_talk_s"), amount("buyer_talk_s")
    emails_sent, email_replies = count("emails_sent"), count("email_replies")
    booked, held = count("meetings_booked"), count("meetings_held")
    won, lost = count("deals_won"), count("deals_lost")
    revenue = amount("revenue_won")
    target = None if quota_monthly is None else float(quota_monthly) * days / DAYS_PER_MONTH
    return {
        "dials": dials,
        "connects": connects,
        "connect_rate": ratio(connects, dials),
        "talk_time_s": amount("talk_time_s"),
        "talk_ratio": ratio(rep_talk, rep_talk + buyer_talk),
        "emails_sent": emails_sent,
        "email_replies": email_replies,
        "reply_rate": ratio(email_replies, emails_sent),
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


def _rep_out(row: Row[Any]) -> RepOut:
    return RepOut(
        rep_id=row.rep_id,
        name=row.name,
        team=row.team,
        hired_at=row.hired_at,
        timezone=row.timezone,
        quota_monthly=None if row.quota_monthly is None else float(row.quota_monthly),
        active=row.active,
        aliases=Aliases.model_validate({k: v for k, v in (row.aliases or {}).items() if k in ALIAS_KINDS}),
        updated_at=row.updated_at,
    )


def _no_rep() -> ApiError:
    # Identical for a rep of another tenant and a rep that does not exist: nothing leaks.
    return ApiError(404, "not_found", "no such rep")


async def put_rep(engine: AsyncEngine, tenant: str, rep_id: str, body: RepIn) -> tuple[RepOut, bool]:
    aliases = body.aliases.model_dump(exclude_none=True) if body.aliases else {}
    fields = queries.RepFields(
        name=body.name,
        team=body.team,
        hired_at=body.hired_at,
        timezone=body.timezone,
        quota_monthly=body.quota_monthly,
        active=body.active,
        aliases=aliases,
    )
    try:
        row, created = await queries.upsert_rep(engine, tenant, rep_id, fields)
    except queries.AliasConflict as exc:
        owner = "another rep" if exc.rep_id is None else f"rep {exc.rep_id!r}"
        raise ApiError(
            409,
            "alias_conflict",
            f"alias {exc.kind} is already used by {owner}",
            [{"field": f"aliases.{exc.kind}", "reason": f"already used by {owner}"}],
        ) from exc
    return _rep_out(row), created


async def get_rep(engine: AsyncEngine, tenant: str, rep_id: str) -> RepOut:
    row = await queries.get_rep(engine, tenant, rep_id)
    if row is None:
        raise _no_rep()
    return _rep_out(row)


async def list_reps(engine: AsyncEngine, tenant: str, team: str | None, active: bool | None) -> list[RepOut]:
    return [_rep_out(r) for r in await queries.list_reps(engine, tenant, team, active)]


def _metric_values(found: queries.CounterSums) -> dict[str, int | float | None]:
    days = (found.end - found.start).days + 1
    return metrics_from_sums(found.sums, quota_monthly=found.quota_monthly, days=days)


def _metrics(found: queries.CounterSums) -> Metrics:
    return Metrics.model_validate(_metric_values(found))


async def rep_metrics(pool: ReadPool, tenant: str, rep_id: str, spec: WindowSpec, now: datetime) -> bytes:
    """The JSON of `RepMetricsOut`, built from the formulas' plain values (they have its types)."""
    with rollup_read("rep_metrics"):
        found = await queries.rep_counter_sums(pool, tenant, rep_id, spec, now, METRIC_COLUMNS)
    if found is None:
        raise _no_rep()
    metrics = _metric_values(found)
    return json_answer(
        {
            "rep_id": rep_id,
            "from": found.start,
            "to": found.end,
            "as_of": found.as_of,
            "metrics": {name: metrics[name] for name in Metrics.model_fields},
        }
    )


async def team_metrics(
    engine: AsyncEngine, tenant: str, team: str, spec: WindowSpec, now: datetime
) -> TeamMetricsOut:
    with rollup_read("team_metrics"):
        found = await queries.team_counter_sums(engine, tenant, team, spec, now, METRIC_COLUMNS)
    if found is None:
        raise ApiError(404, "not_found", "no such team")
    reps, sums = found
    return TeamMetricsOut(
        team=team, reps=reps, from_=sums.start, to=sums.end, as_of=sums.as_of, metrics=_metrics(sums)
    )
