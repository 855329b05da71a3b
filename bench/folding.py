"""The real aggregator on a preloaded backlog: events/s, exactly-once checks, scale-out, memory.

Rates count messages (redeliveries included), as the peers do, from the aggregator's first commit
to its last: joining the consumer group is start-up, not folding work.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import stack as st
from bench.profile import Profiler

# Without progress for this long (group join included), the run has failed: see the service's log.
STALL_S = 60.0


@dataclass
class Backlog:
    """A topic's preloaded messages for one tenant: `messages` deliveries of `distinct` events."""

    tenant: str
    topic: str
    messages: int
    distinct: int


@dataclass
class Progress:
    """perf_counter times of the first commit seen, of a tenth of the events folded, and of all."""

    first_at: float
    first_count: int
    tenth_at: float
    last_at: float

    def rate(self, backlog: Backlog) -> float:
        """Messages/s from the first commit to the last (redeliveries counted as the peers count them)."""
        remaining = backlog.messages * (1 - self.first_count / backlog.distinct)
        return remaining / max(self.last_at - self.first_at, 1e-6)


async def _wait_folded(
    dsn: str, tenant: str, distinct: int, on_first: Callable[[], object] = lambda: None
) -> Progress:
    """Polls the tenant's watermark until every distinct event is folded."""
    conn = await asyncpg.connect(dsn)
    sql = "SELECT events_folded FROM tenant_watermarks WHERE tenant = $1"
    first: tuple[float, int] | None = None
    tenth: float | None = None
    last = (time.perf_counter(), -1)
    try:
        while True:
            count = int(await conn.fetchval(sql, tenant) or 0)
            now = time.perf_counter()
            if first is None and count > 0:
                first = (now, count)
                on_first()
            if tenth is None and count >= distinct / 10:
                tenth = now
            if count >= distinct:
                assert first is not None
                assert tenth is not None
                return Progress(first[0], first[1], tenth, now)
            if count != last[1]:
                last = (now, count)
            elif now - last[0] > STALL_S:
                raise TimeoutError(f"no progress for {STALL_S:.0f} s: {count} of {distinct} events folded")
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


def fold_backlog(
    stack: st.Stack,
    backlog: Backlog,
    group: str,
    profiles: Path | None = None,
    py_spy: Path | None = None,
    without: Sequence[str] = (),
) -> dict[str, Any]:
    """One aggregator process folds the backlog; checks exactly once; stops it.

    With `profiles`, py-spy samples the aggregator and pg_stat_statements (when enabled) ranks the
    batch transaction's statements. `without` switches stateful folds off (diagnostics only).
    """
    if profiles is not None:
        asyncio.run(st.execute(stack.dsn, "SELECT pg_stat_statements_reset()"))
    agg = stack.aggregator(
        f"aggregator-{group}", without, SALESLOOP_EVENTS_TOPIC=backlog.topic, SALESLOOP_CONSUMER_GROUP=group
    )
    profiler = Profiler(py_spy, agg.pid, profiles / "aggregator.raw") if profiles else None
    meters: list[st.CpuMeter] = []
    try:
        progress = asyncio.run(
            _wait_folded(
                stack.dsn,
                backlog.tenant,
                backlog.distinct,
                lambda: meters.append(st.CpuMeter(stack, agg.pid)),
            )
        )
        cpu = meters[0].stop()
    finally:
        summary = profiler.stop() if profiler else None
        rss = agg.stop()
    # Growth with the backlog shows as RSS rising after the first tenth of it.
    rss_tenth = agg.rss.peak_until(progress.tenth_at)
    counted = st.rollup_events(stack.dsn, backlog.tenant)
    folded = st.folded(stack.dsn, backlog.tenant)
    if counted != backlog.distinct or folded != backlog.distinct:
        raise RuntimeError(
            f"not exactly once: {folded} folded, {counted} counted, {backlog.distinct} distinct"
        )
    out: dict[str, Any] = {
        "events_per_s": round(progress.rate(backlog)),
        "messages": backlog.messages,
        "distinct": backlog.distinct,
        "events_folded": folded,
        "peak_rss_mb": rss,
        "peak_rss_first_tenth_mb": rss_tenth,
        "cpu_seconds": cpu,
    }
    if summary is not None:
        out["profile"] = summary
    if profiles is not None:
        out["statements"] = asyncio.run(st.top_statements(stack.dsn))
        (profiles / "aggregator-statements.json").write_text(json.dumps(out["statements"], indent=2))
    return out


def scale_out(stack: st.Stack, backlog: Backlog, group: str) -> dict[str, Any]:
    """Two aggregators in one consumer group on one topic: both must own partitions and fold events,
    and together they must fold every distinct event exactly once."""
    env = {"SALESLOOP_EVENTS_TOPIC": backlog.topic, "SALESLOOP_CONSUMER_GROUP": group}
    members = [stack.aggregator(f"aggregator-{group}-{i}", **env) for i in (1, 2)]
    assigned = [0.0, 0.0]
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            for i, member in enumerate(members):
                metrics = await asyncio.to_thread(st.scrape, member.url)
                assigned[i] = max(assigned[i], metrics.get("salesloop_aggregator_assigned_partitions", 0.0))
            await asyncio.sleep(0.25)

    async def run() -> Progress:
        watcher = asyncio.create_task(watch())
        try:
            return await _wait_folded(stack.dsn, backlog.tenant, backlog.distinct)
        finally:
            stop.set()
            await watcher

    try:
        progress = asyncio.run(run())
        per_member = [st.scrape(m.url).get("salesloop_aggregator_events_folded_total", 0.0) for m in members]
    finally:
        rss = [m.stop() for m in members]
    counted = st.rollup_events(stack.dsn, backlog.tenant)
    folded = st.folded(stack.dsn, backlog.tenant)
    return {
        "events_per_s": round(progress.rate(backlog)),
        "messages": backlog.messages,
        "distinct": backlog.distinct,
        "max_assigned_partitions": [int(a) for a in assigned],
        "events_folded_per_member": [int(n) for n in per_member],
        "events_folded": folded,
        "rollup_events": counted,
        "exactly_once": folded == counted == backlog.distinct == int(sum(per_member)),
        "both_assigned": all(a > 0 for a in assigned),
        "peak_rss_mb": rss,
    }
