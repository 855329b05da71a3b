"""Freshness: from ingest's 202 to the event being visible in the API, at a steady event rate.

Run in its own process by bench.run. A paced generator sends single events (Bearer key) at `rate`
per second for `seconds`; every `probe_every`-th event is a probe: the only event of its own rep,
so the moment `GET /v1/reps/{rep}/metrics` counts it is the moment it became visible. Each probe
is polled every `poll_ms` from its 202 on; its freshness is the time from the 202 to the first
answer that counts it (an upper bound, at most one poll interval plus one API call late).

stdin: JSON {ingest_port, api_port, tenant, ingest_key, api_key, rate, seconds, warmup_seconds,
probe_every, poll_ms, connections}; stdout: JSON summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bench import workload
from bench.loadgen import build_request, percentile, read_response

PROBE_TIMEOUT_S = 30.0
HOST = "127.0.0.1"


class Pool:
    """Keep-alive connections to one server; a connection that fails is replaced on the next use."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(size):
            self.free.put_nowait(None)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        conn = await self.free.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(HOST, self.port)
            conn[1].write(request)
            result = await read_response(conn[0])
        except (OSError, asyncio.IncompleteReadError):
            if conn is not None:
                conn[1].close()
            conn = None
            raise
        finally:
            self.free.put_nowait(conn)
        return result


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    # The first seconds are sent but not measured: connections, caches and the consumer settle.
    warmup = int(rate * float(spec["warmup_seconds"]))
    total = warmup + int(rate * seconds)
    tenant, probe_every, poll_s = spec["tenant"], int(spec["probe_every"]), spec["poll_ms"] / 1000
    ingest = Pool(spec["ingest_port"], int(spec["connections"]))
    api = Pool(spec["api_port"], 8)
    ingest_host = f"{HOST}:{spec['ingest_port']}"
    path = f"/v1/events/{tenant}"
    post_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {spec['ingest_key']}"}
    get_headers = {"Authorization": f"Bearer {spec['api_key']}"}
    run_id = f"{int(time.time())}"
    background = [
        build_request(ingest_host, path, post_headers, orjson.dumps({**e, "event_id": f"f{run_id}-{i}"}))
        for i, e in enumerate(
            workload.events(total, days=seconds / 86400, seed=5, start=datetime.now(UTC) - timedelta(hours=1))
        )
    ]
    acks_ms: list[float] = []
    statuses: dict[int, int] = {}
    freshness_ms: list[float] = []
    timeouts = 0
    errors = 0

    async def poll(rep: str, day: str, acked: float) -> None:
        nonlocal timeouts, errors
        request = build_request(
            f"{HOST}:{spec['api_port']}",
            f"/v1/reps/{rep}/metrics?from={day}&to={day}",
            get_headers,
            b"",
            "GET",
        )
        while time.perf_counter() - acked < PROBE_TIMEOUT_S:
            try:
                status, body = await api.call(request)
            except (OSError, asyncio.IncompleteReadError):
                errors += 1
                continue
            if status == 200 and orjson.loads(body)["metrics"]["emails_sent"] >= 1:
                freshness_ms.append((time.perf_counter() - acked) * 1000)
                return
            await asyncio.sleep(poll_s)
        timeouts += 1

    async def send(request: bytes, then: Callable[[float], Awaitable[None]] | None, measured: bool) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        try:
            status, _ = await ingest.call(request)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            return
        acked = time.perf_counter()
        statuses[status] = statuses.get(status, 0) + 1
        if measured:
            acks_ms.append((acked - t0) * 1000)
        if then is not None and status == 202:
            await then(acked)

    def probe(k: int) -> tuple[bytes, Callable[[float], Awaitable[None]]]:
        now = datetime.now(UTC)
        rep = f"probe-{run_id}-{k}"
        event = {
            "event_id": f"probe-{run_id}-{k}",
            "type": "email.sent",
            "occurred_at": now.isoformat(),
            "rep_id": rep,
            "channel": "outbound",
        }
        day = now.date().isoformat()
        return build_request(ingest_host, path, post_headers, orjson.dumps(event)), (
            lambda acked: poll(rep, day, acked)
        )

    tasks: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        for i in range(sent, due):
            measured = i >= warmup
            request, then = probe(i) if measured and i % probe_every == 0 else (background[i], None)
            task = asyncio.create_task(send(request, then, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sent = due
        await asyncio.sleep(0.005)
    send_seconds = time.perf_counter() - started
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks), PROBE_TIMEOUT_S + 5)
    acks = sorted(acks_ms)
    fresh = sorted(freshness_ms)
    return {
        "target_rate": rate,
        "achieved_rate": round(total / send_seconds, 1),
        "requests": total,
        "statuses": statuses,
        "ingest_p50_ms": round(percentile(acks, 50), 1),
        "ingest_p99_ms": round(percentile(acks, 99), 1),
        "warmup_requests": warmup,
        "probes": sum(1 for i in range(warmup, total) if i % probe_every == 0),
        "probes_visible": len(fresh),
        "probe_timeouts": timeouts,
        "errors": errors,
        "poll_ms": spec["poll_ms"],
        "p50_ms": round(percentile(fresh, 50), 1),
        "p90_ms": round(percentile(fresh, 90), 1),
        "p99_ms": round(percentile(fresh, 99), 1),
        "max_ms": round(fresh[-1], 1) if fresh else None,
    }


def main() -> None:
    import uvloop

    json.dump(uvloop.run(run(json.load(sys.stdin))), sys.stdout)


if __name__ == "__main__":
    main()
