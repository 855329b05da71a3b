"""Unit economics (SPEC 5.10): the window's summary and the tenant's settings.

The figures are computed by services/api/kit/economics.py from what the subscriptions fold keeps
(services/aggregator/folds/subscriptions.py), the spend and the reps' costs; the planning reads use
the same read (kit/economics_reads.py).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.economics import queries
from services.api.economics.schemas import FiguresOut, SettingsIn, SettingsOut, SummaryOut
from services.api.kit.economics import Figures
from services.api.kit.economics_reads import economics_read
from services.api.kit.errors import NotFound
from services.api.kit.reads import Reads, model_json
from services.api.kit.windows import WindowSpec


def figures_out(figures: Figures) -> FiguresOut:
    return FiguresOut(**dataclasses.asdict(figures))


async def summary(reads: Reads, *, tenant: str, spec: WindowSpec, now: datetime) -> bytes:
    """The JSON of `SummaryOut` for the window."""
    read = await economics_read(reads, tenant, spec=spec, now=now)
    if read is None:
        raise NotFound("no such tenant")
    out = SummaryOut(
        from_=read.start,
        to=read.end,
        as_of=read.as_of,
        settings=SettingsOut(**dataclasses.asdict(read.settings)),
        overall=figures_out(read.summary.overall),
        channels={name: figures_out(f) for name, f in read.summary.channels.items()},
    )
    return model_json(out)


def _settings_out(stored: tuple[Decimal | None, Decimal, Decimal | None]) -> SettingsOut:
    margin, cost, failure = stored
    return SettingsOut(
        gross_margin=None if margin is None else float(margin),
        sales_cost_monthly=float(cost),
        failure_rate=None if failure is None else float(failure),
    )


async def put_settings(engine: AsyncEngine, *, tenant: str, body: SettingsIn) -> SettingsOut:
    stored = await queries.put_settings(
        engine,
        tenant,
        gross_margin=body.gross_margin,
        sales_cost_monthly=body.sales_cost_monthly,
        failure_rate=body.failure_rate,
    )
    return _settings_out(stored)


async def get_settings(engine: AsyncEngine, *, tenant: str) -> SettingsOut:
    stored = await queries.get_settings(engine, tenant)
    if stored is None:
        raise NotFound("no such tenant")
    return _settings_out(stored)
