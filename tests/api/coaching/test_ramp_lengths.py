"""The tenant's measured ramp length as coaching keeps it: measured once per quarter hour and set of
reps; a new quarter hour is measured in the background while reads use the length known; a rep
written is waited for."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from services.api.coaching.answers import RampLengths

NOW = datetime(2026, 11, 20, 12, 1, tzinfo=UTC)


def group(reps_version: str) -> Any:
    return SimpleNamespace(sums=SimpleNamespace(reps_version=reps_version, snapshot="1:2:"))


class Measure:
    """Lengths to answer, one per measurement; a measurement waits for `gate` when it is set."""

    def __init__(self, *lengths: int) -> None:
        self.lengths = list(lengths)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self, reads: Any, tenant: str, now: datetime, snapshot: str) -> int:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.lengths.pop(0)


async def test_a_new_quarter_hour_is_measured_in_the_background() -> None:
    measure = Measure(4, 6)
    lengths = RampLengths(measure=measure)
    reads: Any = None
    assert await lengths.months(reads, "t", group("2:a"), NOW) == 4
    assert await lengths.months(reads, "t", group("2:a"), NOW + timedelta(minutes=10)) == 4
    assert measure.calls == 1  # the same quarter hour: no measurement
    measure.gate = asyncio.Event()
    later = NOW + timedelta(minutes=20)
    # The next quarter hour: the length known at once (not after the measurement, which waits for
    # the gate), one measurement started whatever the reads.
    assert await asyncio.wait_for(lengths.months(reads, "t", group("2:a"), later), 5) == 4
    await asyncio.sleep(0)  # the measurement starts
    assert await asyncio.wait_for(lengths.months(reads, "t", group("2:a"), later), 5) == 4
    await asyncio.sleep(0)
    assert measure.calls == 2
    measure.gate.set()
    deadline = asyncio.get_running_loop().time() + 5
    while await lengths.months(reads, "t", group("2:a"), later) != 6:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    assert measure.calls == 2


async def test_a_rep_written_is_measured_before_the_answer() -> None:
    measure = Measure(4, 2, 7)
    lengths = RampLengths(measure=measure)
    reads: Any = None
    assert await lengths.months(reads, "t", group("2:a"), NOW) == 4
    assert await lengths.months(reads, "t", group("3:b"), NOW) == 2
    assert await lengths.months(reads, "u", group("3:b"), NOW) == 7  # another tenant: its own
    assert measure.calls == 3


async def test_a_failed_background_measurement_keeps_the_length_known() -> None:
    class Failing(Measure):
        async def __call__(self, reads: Any, tenant: str, now: datetime, snapshot: str) -> int:
            if self.calls:
                self.calls += 1
                raise ConnectionError("database gone")
            return await super().__call__(reads, tenant, now, snapshot)

    measure = Failing(4)
    lengths = RampLengths(measure=measure)
    reads: Any = None
    assert await lengths.months(reads, "t", group("2:a"), NOW) == 4
    later = NOW + timedelta(minutes=15)
    assert await lengths.months(reads, "t", group("2:a"), later) == 4
    deadline = asyncio.get_running_loop().time() + 5
    while measure.calls < 2:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.01)  # the failed task has ended
    assert await lengths.months(reads, "t", group("2:a"), later) == 4
    while measure.calls < 3:  # and the next read tried again
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
