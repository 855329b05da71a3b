"""The slow-moving inputs of a plan and of the stage of fit, kept per tenant.

The reps' tenures (kit.attrition), the measured ramp of bookings and of quota attainment (kit.ramp)
and the hire cohorts' ramps (planning/fit.py) move with months of tenure and with reps written, not
with each batch the aggregator commits, yet measuring them reads every rep's first 25 months of
rollups: many times what a read may cost, and
every commit changes the database snapshot the answers are cached under. `SlowInputs` keeps them per
tenant with the quarter hour and the reps' version they were measured for (`reps_version`: the
count and newest `updated_at` of the tenant's reps, read by every request with its context):

- a rep added or written (PUT /v1/reps, a rep the aggregator registers) changes the version: the
  next read measures again and waits for it, in every api process;
- a new quarter hour with the same reps is served what is known and measured again in the
  background (one measurement per tenant at a time; a failed one keeps what is known and the next
  read tries again), so no read waits for it.

The economics settings' failure rate is not kept here: each request reads it with its context.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from services.api.kit.attrition import RepTenure, rep_tenures
from services.api.kit.ramp import MeasuredRamp, measured_ramp
from services.api.kit.reads import Reads, rollup_read
from services.api.planning.fit import CohortRamp, cohort_ramps

log = logging.getLogger(__name__)

QUERY = "planning_inputs"


@dataclass(frozen=True)
class Slow:
    """What a plan and the stage of fit read besides their context."""

    tenures: tuple[RepTenure, ...]
    ramp: MeasuredRamp  # of revenue_won
    attainment: MeasuredRamp  # of quota_attainment
    cohorts: tuple[CohortRamp, ...] = ()  # the hire cohorts' ramps (planning/fit.py)


Measure = Callable[[Reads, str, datetime, str], Awaitable[Slow]]


async def measure(reads: Reads, tenant: str, now: datetime, snapshot: str) -> Slow:
    with rollup_read(QUERY):
        tenures = await rep_tenures(reads.pool, tenant, now)
    ramp = await measured_ramp(reads, tenant, now=now, snapshot=snapshot)
    attainment = await measured_ramp(reads, tenant, now=now, metric="quota_attainment", snapshot=snapshot)
    hired = {r.rep_id: r.hired_at for r in tenures if r.hired_at is not None}
    cohorts = cohort_ramps(ramp.by_rep, hired, ramp.steady_state)
    return Slow(tuple(tenures), replace(ramp, by_rep={}), replace(attainment, by_rep={}), tuple(cohorts))


def quarter_hour(now: datetime) -> datetime:
    """`now` to the quarter hour: every timezone's day, so each rep's today, is constant within one."""
    now = now.astimezone(UTC)
    return now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)


Version = tuple[datetime, str]


class SlowInputs:
    """The slow inputs per tenant with the (quarter hour, reps' version) they were measured for; the
    least recently used tenants dropped beyond `size` (the module's doc says when they are measured).
    A tenant of 200 reps takes some tens of kilobytes: its reps' tenures and the ramps' curves (each
    rep's months are read for the cohorts, not kept)."""

    def __init__(self, size: int = 1024, measure: Measure = measure) -> None:
        self._found: OrderedDict[str, tuple[Version, Slow]] = OrderedDict()
        self._size = size
        self._measure = measure
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def get(
        self, reads: Reads, tenant: str, *, reps_version: str, now: datetime, snapshot: str
    ) -> Slow:
        version = (quarter_hour(now), reps_version)
        found = self._found.get(tenant)
        if found is not None and found[0][1] == reps_version:
            self._found.move_to_end(tenant)
            if found[0][0] < version[0] and tenant not in self._refreshing:
                task = asyncio.create_task(self._refresh(reads, tenant, version, now, snapshot))
                self._refreshing[tenant] = task
            return found[1]
        slow = await self._measure(reads, tenant, now, snapshot)
        self._keep(tenant, version, slow)
        return slow

    async def _refresh(
        self, reads: Reads, tenant: str, version: Version, now: datetime, snapshot: str
    ) -> None:
        try:
            slow = await self._measure(reads, tenant, now, snapshot)
            found = self._found.get(tenant)
            # Reps written meanwhile were measured by the read that saw them: theirs is kept.
            if found is not None and found[0][1] == version[1] and found[0][0] <= version[0]:
                self._keep(tenant, version, slow)
        except Exception:  # what is known stays; the next read tries again
            log.warning("measuring the planning inputs failed", extra={"tenant": tenant}, exc_info=True)
        finally:
            self._refreshing.pop(tenant, None)

    def _keep(self, tenant: str, version: Version, slow: Slow) -> None:
        self._found[tenant] = (version, slow)
        self._found.move_to_end(tenant)
        while len(self._found) > self._size:
            self._found.popitem(last=False)


SLOW_INPUTS = SlowInputs()
