"""A small HTTP/1.1 keep-alive load generator (asyncio, raw sockets), run in its own process.

It sends pre-built requests round-robin over `concurrency` connections for `seconds` and reports
requests/s, status counts and latency percentiles. Pre-building keeps the generator cheap, so on a
2-core machine most of the CPU goes to the service under test.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass


@dataclass
class Result:
    requests: int
    seconds: float
    statuses: dict[int, int]
    latencies_ms: list[float]

    def summary(self) -> dict[str, float | int | dict[int, int]]:
        lat = sorted(self.latencies_ms)
        return {
            "requests": self.requests,
            "req_per_s": self.requests / self.seconds,
            "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90),
            "p99_ms": percentile(lat, 99),
            "max_ms": lat[-1] if lat else 0.0,
            "statuses": self.statuses,
        }


def build_request(
    host: str, path: str, headers: dict[str, str], body: bytes = b"", method: str = "POST"
) -> bytes:
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length (what uvicorn sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


async def run(host: str, port: int, requests: list[bytes], concurrency: int, seconds: float) -> Result:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    counter = 0
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal counter
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        try:
            while time.perf_counter() < stop_at:
                req = requests[i % len(requests)]
                i += concurrency
                t0 = time.perf_counter()
                writer.write(req)
                status, _ = await read_response(reader)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                counter += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return Result(counter, time.perf_counter() - t0, statuses, latencies)


def main() -> None:
    """stdin: JSON {host, port, concurrency, seconds, requests: [latin-1 strings]}; stdout: summary JSON."""
    spec = json.load(sys.stdin)
    reqs = [r.encode("latin-1") for r in spec["requests"]]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(spec["host"], spec["port"], reqs, spec["concurrency"], spec["seconds"]))
    json.dump(result.summary(), sys.stdout)


if __name__ == "__main__":
    main()
