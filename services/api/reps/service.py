"""The rep registry and SPEC 5.1 metrics over a window (the formulas: services/api/kit/sums.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.errors import Conflict, InvalidInput, NotFound
from services.api.kit.reads import ReadPool, json_answer, rollup_read
from services.api.kit.sums import METRIC_COLUMNS, METRICS, CounterSums, window_metrics
from services.api.kit.windows import WindowSpec
from services.api.reps import queries
from services.api.reps.schemas import Aliases, Metrics, RepIn, RepOut, TeamMetricsOut
from services.core.events import ALIAS_KINDS


def _rep_out(row: Row[Any]) -> RepOut:
    aliases = {k: v for k, v in (row.aliases or {}).items() if k in ALIAS_KINDS}
    # Constructed, not validated: what PUT refuses today may have been stored before.
    return RepOut.model_validate({**row._mapping, "aliases": Aliases.model_construct(**aliases)})


def _no_rep() -> NotFound:
    # Identical for a rep of another tenant and a rep that does not exist: nothing leaks.
    return NotFound("no such rep")


async def put_rep(engine: AsyncEngine, *, tenant: str, rep_id: str, body: RepIn) -> tuple[RepOut, bool]:
    """Create or replace the rep and its aliases; returns (rep, created)."""
    aliases = body.aliases.model_dump(exclude_none=True) if body.aliases else {}
    fields = queries.RepFields(**body.model_dump(exclude={"aliases"}), aliases=aliases)
    try:
        row, created = await queries.upsert_rep(engine, tenant, rep_id, fields)
    except queries.UnknownTimezone:
        raise InvalidInput("timezone", "must be an IANA timezone name the database knows") from None
    except queries.AliasConflict as exc:
        owner = "another rep" if exc.rep_id is None else f"rep {exc.rep_id!r}"
        raise Conflict(
            "alias_conflict",
            f"alias {exc.kind} is already used by {owner}",
            field=f"aliases.{exc.kind}",
            reason=f"already used by {owner}",
        ) from exc
    return _rep_out(row), created


async def get_rep(engine: AsyncEngine, *, tenant: str, rep_id: str) -> RepOut:
    row = await queries.get_rep(engine, tenant, rep_id)
    if row is None:
        raise _no_rep()
    return _rep_out(row)


async def list_reps(
    engine: AsyncEngine, *, tenant: str, team: str | None, active: bool | None
) -> list[RepOut]:
    return [_rep_out(r) for r in await queries.list_reps(engine, tenant, team, active)]


def rep_metrics_body(rep_id: str, found: CounterSums) -> dict[str, Any]:
    """`RepMetricsOut` as plain values, for the JSON writer: the hot read skips the model (its
    contract test checks the two write the same bytes)."""
    metrics = window_metrics(found)
    return {
        "rep_id": rep_id,
        "from": found.start,
        "to": found.end,
        "as_of": found.as_of,
        "metrics": {name: metrics[name] for name in METRICS},
    }


async def rep_metrics(pool: ReadPool, *, tenant: str, rep_id: str, spec: WindowSpec, now: datetime) -> bytes:
    """The JSON of `RepMetricsOut`."""
    with rollup_read("rep_metrics"):
        found = await queries.rep_counter_sums(
            pool, tenant, rep_id, spec=spec, now=now, columns=METRIC_COLUMNS
        )
    if found is None:
        raise _no_rep()
    return json_answer(rep_metrics_body(rep_id, found))


async def team_metrics(
    engine: AsyncEngine, *, tenant: str, team: str, spec: WindowSpec, now: datetime
) -> TeamMetricsOut:
    with rollup_read("team_metrics"):
        found = await queries.team_counter_sums(
            engine, tenant, team, spec=spec, now=now, columns=METRIC_COLUMNS
        )
    if found is None:
        raise NotFound("no such team")
    reps, sums = found
    metrics = Metrics.model_validate(window_metrics(sums))
    return TeamMetricsOut(
        team=team, reps=reps, from_=sums.start, to=sums.end, as_of=sums.as_of, metrics=metrics
    )
