"""Ingest under load: signed single-event webhooks and batches, from a separate load-generator process.

Requests are built (and signed) before the clock starts, so the generator spends its CPU on sockets.
Event ids repeat when the generator cycles through its requests; ingest does not dedupe (the
aggregator does), so every request is full work for it.

Besides requests/s and latency, each scenario reports the ingest process's CPU seconds per 1,000
requests (user + system, from psutil). On a shared machine requests/s moves with the neighbours'
load; CPU per request hardly does, so compare changes by it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import psutil
from standardwebhooks.webhooks import Webhook

from bench import stack as st
from bench import workload
from bench.loadgen import build_request
from bench.profile import Profiler

HERE = Path(__file__).resolve().parent
BATCH = 100
# Twilio signs the public URL it called; the ingest process is told its public base URL.
PUBLIC_BASE_URL = "https://hooks.bench.example"
TWILIO_ROUTE = "/webhooks/twilio/{tenant}"


class Target:
    """The ingest process under test and the tenant's credentials."""

    def __init__(self, port: int, tenant: str, key: str, webhook_secret: str, twilio_token: str) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self.tenant = tenant
        self.key = key
        self.webhook_secret = webhook_secret
        self.twilio_token = twilio_token

    def has_route(self, template: str) -> bool:
        spec = httpx.get(f"http://{self.host}/openapi.json", timeout=10).json()
        return template in spec.get("paths", {})


def canonical(target: Target, count: int, kind: str) -> list[bytes]:
    """`count` requests of one event (`bearer` or Standard Webhooks `webhook`) or of BATCH events."""
    webhook = Webhook(target.webhook_secret)
    path = f"/v1/events/{target.tenant}"
    per_request = BATCH if kind == "batch" else 1
    events = list(workload.events(count * per_request, seed=99))
    out = []
    for i in range(count):
        chunk = events[i * per_request : (i + 1) * per_request]
        body = orjson.dumps({"events": chunk} if kind == "batch" else chunk[0])
        headers = {"Content-Type": "application/json"}
        if kind == "webhook":
            msg_id = f"msg_{i}"
            now = datetime.now(UTC)
            headers |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": webhook.sign(msg_id, now, body.decode()),
            }
        else:
            headers["Authorization"] = f"Bearer {target.key}"
        out.append(build_request(target.host, path, headers, body))
    return out


def twilio(target: Target, count: int) -> list[bytes]:
    """Twilio call status callbacks (form posts), signed with the tenant's auth token."""
    from services.ingest.sources.twilio import sign

    path = TWILIO_ROUTE.format(tenant=target.tenant)
    url = PUBLIC_BASE_URL + path
    out = []
    for i, e in enumerate(workload.events(count, seed=98)):
        params = [
            ("CallSid", f"CA{i:032x}"),
            ("AccountSid", "AC" + "0" * 32),
            ("CallStatus", "completed"),
            ("CallDuration", str(e.get("duration_s", 60))),
            ("Direction", "outbound-api"),
            ("From", f"+1555{int(e['rep_id'][4:]):07d}"),
            ("To", f"+1666{i % 10_000_000:07d}"),
            ("Timestamp", format_datetime(datetime.fromisoformat(e["occurred_at"]))),
        ]
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(target.twilio_token, url, params),
        }
        out.append(build_request(target.host, path, headers, urlencode(params).encode()))
    return out


def loadgen(port: int, requests: list[bytes], concurrency: int, seconds: float) -> dict[str, Any]:
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": [r.decode("latin-1") for r in requests],
    }
    return st.run_module("bench.loadgen", spec, seconds + 120)


def scenarios(target: Target, seconds: float) -> list[tuple[str, int, Callable[[], list[bytes]]]]:
    """(name, events per request, request builder); enough distinct requests for about 3k req/s."""
    singles = max(1000, int(3500 * seconds))
    out: list[tuple[str, int, Callable[[], list[bytes]]]] = [
        ("webhook", 1, lambda: canonical(target, singles, "webhook")),
        ("bearer", 1, lambda: canonical(target, singles, "bearer")),
    ]
    if target.has_route(TWILIO_ROUTE):
        out.append(("twilio", 1, lambda: twilio(target, singles)))
    out.append(("batch", BATCH, lambda: canonical(target, max(100, int(400 * seconds)), "batch")))
    return out


def run(
    target: Target,
    seconds: float,
    concurrency: int,
    log: Callable[[str], None],
    py_spy: Path | None = None,
    pid: int = 0,
    profiles: Path | None = None,
) -> dict[str, Any]:
    """Every scenario once, back to back, against the same ingest process (profiled if `profiles`)."""
    results: dict[str, Any] = {}
    process = psutil.Process(pid) if pid else None
    for name, per_request, build in scenarios(target, seconds):
        requests = build()
        profiler = Profiler(py_spy, pid, profiles / f"ingest-{name}.raw") if profiles else None
        cpu_before = cpu_seconds(process)
        try:
            r = loadgen(target.port, requests, concurrency, seconds)
            cpu_used = cpu_seconds(process) - cpu_before
        finally:
            summary = profiler.stop() if profiler else None
        if summary is not None:
            r["profile"] = summary
        r["events_per_s"] = r["req_per_s"] * per_request
        r["non_2xx"] = sum(v for k, v in r["statuses"].items() if not 200 <= int(k) < 300)
        cpu = "n/a"
        if process is not None and r["requests"]:
            r["cpu_s_per_1k_requests"] = round(1000 * cpu_used / r["requests"], 3)
            cpu = f"{r['cpu_s_per_1k_requests']:.3f} s"
        log(
            f"ingest {name}: {r['req_per_s']:,.0f} req/s ({r['events_per_s']:,.0f} events/s), "
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, non-2xx {r['non_2xx']}, "
            f"ingest CPU per 1k requests {cpu}"
        )
        results[name] = r
    return results


def cpu_seconds(process: psutil.Process | None) -> float:
    """User + system CPU seconds the process has used so far (0 without a process)."""
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system
