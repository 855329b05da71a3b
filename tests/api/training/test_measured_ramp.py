"""The measured ramp length (SPEC 5.9 default `ramp_months`): curves worked out by hand, and one
tenant's rollups read through the kit's cached function."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator import archive_partitions
from services.api.kit.ramp import (
    DEFAULT_RAMP_MONTHS,
    inputs,
    measure_ramp,
    measured_ramp,
    measured_ramp_months,
)
from services.api.kit.reads import AnswerCache, ReadPool, Reads
from services.api.kit.sums import METRIC_COLUMNS, METRICS, metrics_from_sums
from services.api.kit.tenure import add_months
from services.core.models import Event, Rep, RepDaily
from tests.conftest import Stack
from tests.factories import TenantFactory

D = date

# revenue_won per tenure month
A = {k: float(v) for k, v in enumerate([0, 1000, 2000, 3000, 5000])} | dict.fromkeys(range(5, 25), 5000.0)
B = {k: float(v) for k, v in enumerate([0, 0, 1000, 4000, 4000])} | dict.fromkeys(range(5, 25), 6000.0)
C = {0: 3000.0, 1: 3000.0}  # a new hire: two months so far


def test_first_month_the_median_rep_reaches_80_percent_of_the_steady_state() -> None:
    ramp = measure_ramp([A, B, C])
    # months 6-24: 19 x 5000 (A) and 19 x 6000 (B): the steady state is 5500, 80 % of it 4400
    assert ramp.steady_state == 5500.0
    # medians: month 0 of 0, 0, 3000; month 1 of 1000, 0, 3000; month 2 of 2000, 1000; ...
    assert ramp.curve[:5] == (0.0, 1000.0, 1500.0, 3500.0, 4500.0)
    assert ramp.reps[:3] == (3, 3, 2)
    assert ramp.months == 4
    assert ramp.ramp_months == 4


def test_unknown_months_are_left_out() -> None:
    # The new hire's unknown month 1 neither counts as 0 nor as anything else.
    ramp = measure_ramp([A, B, {0: 3000.0, 1: None}])
    assert ramp.curve[1] == 500.0
    assert ramp.reps[1] == 2


def test_a_ramp_that_cannot_be_measured_is_three_months() -> None:
    young = measure_ramp([{0: 100.0, 1: 200.0, 5: 900.0}])  # nobody reached month 6
    assert (young.steady_state, young.months, young.ramp_months) == (None, None, DEFAULT_RAMP_MONTHS)
    idle = measure_ramp([dict.fromkeys(range(25), 0.0)])
    assert (idle.steady_state, idle.months, idle.ramp_months) == (0.0, None, 3)
    assert measure_ramp([]).ramp_months == 3


def test_a_rep_productive_at_once_has_no_ramp() -> None:
    assert measure_ramp([dict.fromkeys(range(25), 1000.0)]).ramp_months == 0


def test_each_metric_is_measured_from_the_columns_its_formula_reads() -> None:
    rng = random.Random(7)
    for _ in range(20):
        sums = {c: rng.choice([0, rng.randint(1, 50)]) for c in METRIC_COLUMNS}
        for metric in METRICS:
            few = {c: sums[c] for c in inputs(metric)}
            assert metrics_from_sums(few, quota_monthly=1000, days=30)[metric] == pytest.approx(
                metrics_from_sums(sums, quota_monthly=1000, days=30)[metric]
            ), metric


NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
FIRST_EVENT = datetime(2024, 1, 1, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
async def reads(stack: Stack) -> AsyncIterator[Reads]:
    pool = await ReadPool.open(stack.settings(db_pool_size=2))
    try:
        yield Reads(pool, AnswerCache())
    finally:
        await pool.close()


async def _rep(engine: AsyncEngine, tenant: str, rep_id: str, hired: date, **fields: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(Rep).values(tenant=tenant, rep_id=rep_id, timezone="UTC", hired_at=hired, **fields)
        )


async def _months(
    engine: AsyncEngine, tenant: str, rep_id: str, hired: date, values: dict[int, float]
) -> None:
    """Each month's revenue won on the second day of the tenure month."""
    rows = [
        {
            "tenant": tenant,
            "rep_id": rep_id,
            "day": add_months(hired, k) + timedelta(days=1),
            "revenue_won": Decimal(v),
        }
        for k, v in values.items()
        if v
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(RepDaily).values(rows))


async def _first_event(engine: AsyncEngine, tenant: str, at: datetime) -> None:
    async with engine.begin() as conn:
        # the month-partitioned archive needs the month's partition, which the aggregator would make
        raw = await conn.get_raw_connection()
        await archive_partitions.ensure(raw.driver_connection, [archive_partitions.month_of(at)])
        await conn.execute(
            insert(Event).values(
                tenant=tenant,
                event_id="first",
                type="lead.created",
                occurred_at=at,
                received_at=at,
                source="api",
                payload={},
            )
        )


async def test_the_tenants_ramp_from_its_rollups(
    engine: AsyncEngine, tenants: TenantFactory, reads: Reads
) -> None:
    t = await tenants.create()
    assert await measured_ramp_months(reads, t.slug, now=NOW) == 3  # no data at all
    await _first_event(engine, t.slug, FIRST_EVENT)
    for rep_id, values in (("a", A), ("b", B)):
        await _rep(engine, t.slug, rep_id, D(2024, 1, 1))
        await _months(engine, t.slug, rep_id, D(2024, 1, 1), values)
    # Hired before the tenant's data began, first event on 10 Jan 2024: months 0-7 are unknown
    # (month 7 began on 1 Jan, before its data); counted as zeros they would pull month 4's median
    # down to 4000 and the answer to month 5.
    await _rep(engine, t.slug, "veteran", D(2023, 6, 1))
    async with engine.begin() as conn:
        await conn.execute(
            insert(RepDaily).values(tenant=t.slug, rep_id="veteran", day=D(2024, 1, 10), dials=3)
        )
    await _months(engine, t.slug, "veteran", D(2023, 6, 1), dict.fromkeys(range(8, 25), 5500.0))
    # Switched off without a leaving day: its idle months are no ramp data.
    await _rep(engine, t.slug, "off", D(2024, 1, 1), active=False)
    # Hired six weeks ago: month 0 is complete, month 1 is not.
    await _rep(engine, t.slug, "new", D(2026, 10, 15))
    await _months(engine, t.slug, "new", D(2026, 10, 15), {0: 3000.0, 1: 9000.0})

    ramp = await measured_ramp(reads, t.slug, now=NOW)
    # months 6-24: 19 x 5000, 17 x 5500, 19 x 6000
    assert ramp.steady_state == 5500.0
    assert ramp.curve[:5] == (0.0, 500.0, 1500.0, 3500.0, 4500.0)  # month 0: 0, 0, 3000
    assert ramp.reps[:2] == (3, 2)
    assert ramp.reps[8] == 3
    assert ramp.months == 4
    assert await measured_ramp_months(reads, t.slug, now=NOW) == 4
    assert (await measured_ramp(reads, t.slug, now=NOW, metric="deals_won")).ramp_months == 3

    # A strong rep who left on 1 September 2024 counts for its months 0-7, and for none after.
    await _rep(engine, t.slug, "gone", D(2024, 1, 1), active=False, left_at=D(2024, 9, 1))
    await _months(engine, t.slug, "gone", D(2024, 1, 1), dict.fromkeys(range(8), 9000.0))
    ramp = await measured_ramp(reads, t.slug, now=NOW)
    assert ramp.curve[:5] == (1500.0, 1000.0, 2000.0, 4000.0, 5000.0)  # month 0: 0, 0, 3000, 9000
    assert (ramp.reps[7], ramp.reps[8]) == (3, 3)  # a, b and gone; then a, b and the veteran
    assert ramp.steady_state == 5500.0
    assert ramp.months == 4
