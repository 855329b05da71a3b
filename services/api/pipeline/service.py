"""Pipeline and forecast (SPEC 5.8): the tenant's stage order, stage statistics, velocity per rep or
team, the forecast of a period, slipped and stale deals.

Every read is one statement (queries.py) over what the pipeline fold keeps, turned into numbers by
answers.py, and cached under the database snapshot it saw (services/api/kit/reads.py), like the
other answers that take real work. "The last 365 days" is the window `365d`: the last 365 full days
in the tenant's timezone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.errors import InvalidInput, NotFound
from services.api.kit.reads import AnswerKey, Reads, model_json, rollup_read
from services.api.kit.snapshot import Probe, answer_key, tenant_probe
from services.api.kit.windows import WindowSpec
from services.api.pipeline import answers, deal_queries, history, queries
from services.api.pipeline.periods import Period, current_month, parse_period
from services.api.pipeline.schemas import (
    DealsOut,
    DealStatus,
    ForecastReportOut,
    Group,
    RepForecastOut,
    StageOut,
    StageReportOut,
    StagesIn,
    StagesOut,
    TeamForecastOut,
    VelocityGroupOut,
    VelocityReportOut,
)

T = TypeVar("T")
HISTORY = WindowSpec(days=365)
STAGES, VELOCITY, FORECAST, SLIPPED, STALE = (
    "pipeline_stages",
    "pipeline_velocity",
    "pipeline_forecast",
    "pipeline_slipped",
    "pipeline_stale",
)


def _no_tenant() -> NotFound:
    return NotFound("no such tenant")


async def _probe(reads: Reads, tenant: str, spec: WindowSpec, now: datetime) -> Probe:
    probe = await tenant_probe(reads.pool, tenant, spec, now)
    if probe is None:
        raise _no_tenant()
    return probe


async def _cached(
    reads: Reads, query: str, probe: Probe, parts: tuple[Hashable, ...],
    compute: Callable[[], Awaitable[tuple[queries.Answer, bytes]]],
) -> bytes:  # fmt: skip
    """The answer of `query` for `parts` at the probed snapshot, computed when not cached."""

    async def answer() -> tuple[AnswerKey, bytes]:
        with rollup_read(query):
            seen, body = await compute()
        return answer_key(query, seen, *parts), body

    return await reads.cache.get(query, answer_key(query, probe, *parts), answer)


def _found(found: T | None) -> T:
    if found is None:
        raise _no_tenant()
    return found


async def stage_report(
    reads: Reads, *, tenant: str, spec: WindowSpec, now: datetime, rep_id: str | None, team: str | None
) -> bytes:
    """The JSON of `StageReportOut`."""
    probe = await _probe(reads, tenant, spec, now)

    async def compute() -> tuple[queries.Answer, bytes]:
        seen, rows = _found(await queries.stages(reads.pool, tenant, spec, now, rep_id, team))
        report = StageReportOut(
            from_=seen.start,
            to=seen.end,
            as_of=seen.as_of,
            configured=any(r.configured for r in rows),
            rep_id=rep_id,
            team=team,
            stages=answers.stage_stats(rows),
        )
        return seen, model_json(report)

    return await _cached(reads, STAGES, probe, (tenant, rep_id, team), compute)


async def velocity_report(
    reads: Reads, *, tenant: str, spec: WindowSpec, now: datetime, group: Group
) -> bytes:
    """The JSON of `VelocityReportOut`: every rep (or named team) of the tenant, and any other owner
    (or team) with deals in the window; null last."""
    probe = await _probe(reads, tenant, spec, now)

    async def compute() -> tuple[queries.Answer, bytes]:
        seen, rows, keys = _found(await queries.velocity(reads.pool, tenant, spec, now, group.value))
        by_key = {r.key: r for r in rows if not r.total}
        total = next((r for r in rows if r.total), None)
        listed = sorted(set(keys) | set(by_key), key=lambda k: (k is None, k or ""))
        groups = [VelocityGroupOut(key=k, **answers.velocity_of(by_key.get(k)).model_dump()) for k in listed]
        report = VelocityReportOut(
            from_=seen.start,
            to=seen.end,
            as_of=seen.as_of,
            group=group,
            groups=groups,
            total=answers.velocity_of(total),
        )
        return seen, model_json(report)

    return await _cached(reads, VELOCITY, probe, (tenant, group.value), compute)


def _period(text: str | None, probe: Probe) -> Period:
    # The probe's 365-day window ends yesterday in the tenant's timezone.
    if text is None:
        return current_month(probe.end + timedelta(days=1))
    return parse_period("period", text)


async def _history(reads: Reads, tenant: str, probe: Probe, now: datetime) -> history.StageHistory:
    return _found(await history.stage_history(reads.pool, tenant, probe.end, now))


async def forecast_report(reads: Reads, *, tenant: str, period: str | None, now: datetime) -> bytes:
    """The JSON of `ForecastReportOut` (default period: the current month in the tenant's timezone)."""
    probe = await _probe(reads, tenant, HISTORY, now)
    p = _period(period, probe)

    async def compute() -> tuple[queries.Answer, bytes]:
        stages = (await _history(reads, tenant, probe, now)).stages
        seen, sums, reps = _found(await queries.forecast(reads.pool, tenant, p.spec, now, stages))
        by_rep, teams, total = answers.forecasts(sums, reps)
        team_of = {rep_id: team for rep_id, team, _ in reps}
        report = ForecastReportOut(
            period=p.label,
            from_=p.first,
            to=p.last,
            as_of=seen.as_of,
            reps=[
                RepForecastOut(rep_id=r, team=team_of.get(r) if r else None, **f.numbers(p.months))
                for r, f in sorted(by_rep.items(), key=lambda item: (item[0] is None, item[0] or ""))
            ],
            teams=[
                TeamForecastOut(team=name, reps=f.reps, **f.numbers(p.months))
                for name, f in sorted(teams.items())
            ],
            total=total.out(p.months),
        )
        return seen, model_json(report)

    # Keyed by the period's days, what the statement reports as its window, and the history's.
    period_probe = Probe(probe.snapshot, p.first, p.last)
    return await _cached(reads, FORECAST, period_probe, (tenant, probe.end), compute)


async def deals_report(
    reads: Reads, *, tenant: str, status: DealStatus, period: str | None, stale_days: int,
    rep_id: str | None, team: str | None, limit: int, now: datetime,
) -> bytes:  # fmt: skip
    """The JSON of `DealsOut`."""
    probe = await _probe(reads, tenant, HISTORY, now)
    if status is DealStatus.stale:
        if period is not None:
            raise InvalidInput("period", "applies to status=slipped only")
        return await _stale(reads, tenant, probe, now, stale_days, rep_id, team, limit)
    p = _period(period, probe)
    return await _slipped(reads, tenant, probe, now, p, rep_id, team, limit)


async def _stale(
    reads: Reads, tenant: str, probe: Probe, now: datetime, stale_days: int, rep_id: str | None,
    team: str | None, limit: int,
) -> bytes:  # fmt: skip
    async def compute() -> tuple[queries.Answer, bytes]:
        stages = (await _history(reads, tenant, probe, now)).stages
        found = await deal_queries.stale(
            reads.pool, tenant, HISTORY, now, stages, stale_days=stale_days, rep_id=rep_id, team=team,
            limit=limit,
        )  # fmt: skip
        seen, count, amount, rows = _found(found)
        body = DealsOut(
            status=DealStatus.stale,
            period=None,
            stale_days=stale_days,
            from_=seen.start,
            to=seen.end,
            as_of=seen.as_of,
            count=count,
            amount=float(amount),
            deals=[answers.deal_out(r, answers.STALE_REASONS) for r in rows],
        )
        return seen, model_json(body)

    parts = (tenant, stale_days, rep_id, team, limit)
    return await _cached(reads, STALE, probe, parts, compute)


async def _slipped(
    reads: Reads, tenant: str, probe: Probe, now: datetime, p: Period, rep_id: str | None,
    team: str | None, limit: int,
) -> bytes:  # fmt: skip
    async def compute() -> tuple[queries.Answer, bytes]:
        seen, candidates = _found(await deal_queries.slipped(reads.pool, tenant, p.spec, now, rep_id, team))
        rows = answers.slipped_deals(candidates, p.first, p.last)
        body = DealsOut(
            status=DealStatus.slipped,
            period=p.label,
            stale_days=None,
            from_=seen.start,
            to=seen.end,
            as_of=seen.as_of,
            count=len(rows),
            amount=float(sum((r.amount or answers.ZERO for r in rows), answers.ZERO)),
            deals=[answers.deal_out(r, answers.SLIPPED_REASONS) for r in rows[:limit]],
        )
        return seen, model_json(body)

    # Keyed by the period's days: what the statement reports as its window.
    period_probe = Probe(probe.snapshot, p.first, p.last)
    return await _cached(reads, SLIPPED, period_probe, (tenant, rep_id, team, limit), compute)


async def put_stages(engine: AsyncEngine, *, tenant: str, body: StagesIn) -> StagesOut:
    """Replace the tenant's stage order and probabilities; `InvalidInput` names a repeated stage."""
    first_at: dict[str, int] = {}
    for i, stage in enumerate(body.stages):
        if stage.name in first_at:
            raise InvalidInput(f"stages.{i}.name", f"repeats the stage of stages.{first_at[stage.name]}")
        first_at[stage.name] = i
    stored = await queries.put_stages(engine, tenant, [(s.name, s.probability) for s in body.stages])
    return StagesOut(stages=[StageOut(name=n, probability=_float(p)) for n, p in stored])


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
