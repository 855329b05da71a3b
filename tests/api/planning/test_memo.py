"""The slow inputs of planning as kept per tenant: measured once per quarter hour and reps' version;
a new quarter hour is measured in the background while reads get what is known; a rep written is
waited for, and a background measurement of the reps before it never replaces it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.api.kit.ramp import measure_ramp
from services.api.planning.memo import Slow, SlowInputs

NOW = datetime(2026, 11, 20, 12, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=15)


def slow(n: int) -> Slow:
    return Slow((), measure_ramp([{0: float(n)}]), measure_ramp([]))


class Measure:
    """Answers slow(n) for each n given, one per measurement; waits for `gate` when it is set."""

    def __init__(self, *ns: int) -> None:
        self.ns = list(ns)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, reads: Any, tenant: str, now: datetime, snapshot: str) -> Slow:
        self.calls += 1
        n = self.ns.pop(0)
        if self.gate is not None:
            await self.gate.wait()
        if n < 0:
            raise RuntimeError("database gone")
        return slow(n)


async def get(memo: SlowInputs, version: str, now: datetime) -> Slow:
    return await memo.get(None, "t", reps_version=version, now=now, snapshot="1:2:")  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_new_quarter_hour_is_measured_in_the_background() -> None:
    measure = Measure(1, 2)
    memo = SlowInputs(measure=measure)
    assert await get(memo, "2:a", NOW) == slow(1)
    assert await get(memo, "2:a", NOW + timedelta(minutes=5)) == slow(1)
    assert measure.calls == 1
    measure.gate = asyncio.Event()
    assert await get(memo, "2:a", LATER) == slow(1)  # not waited for
    await settle()
    assert await get(memo, "2:a", LATER) == slow(1)
    assert measure.calls == 2  # one measurement at a time
    measure.gate.set()
    await settle()
    assert await get(memo, "2:a", LATER) == slow(2)
    assert measure.calls == 2


async def test_a_rep_written_is_waited_for_and_kept_over_an_older_measurement() -> None:
    measure = Measure(1, 2, 3)
    memo = SlowInputs(measure=measure)
    await get(memo, "2:a", NOW)
    measure.gate = asyncio.Event()
    assert await get(memo, "2:a", LATER) == slow(1)  # background measurement of the old reps starts
    waiting = asyncio.create_task(get(memo, "3:b", LATER))  # a rep added: waited for
    await settle()
    assert not waiting.done()
    measure.gate.set()
    assert await waiting == slow(3)
    await settle()
    assert await get(memo, "3:b", LATER) == slow(3)  # the old reps' measurement did not replace it
    assert measure.calls == 3


async def test_a_failed_background_measurement_keeps_what_is_known() -> None:
    measure = Measure(1, -1, 2)
    memo = SlowInputs(measure=measure)
    await get(memo, "2:a", NOW)
    assert await get(memo, "2:a", LATER) == slow(1)
    await settle()
    assert await get(memo, "2:a", LATER) == slow(1)  # failed: kept, and tried again
    await settle()
    assert await get(memo, "2:a", LATER) == slow(2)
