"""`salesloop import` under load: rows/s from CSV files to folded rollups, and live ingest meanwhile.

A Salesforce Data Loader export of a sales team's history (tasks, leads, opportunities, in the
proportions a CRM holds them) is written to files, then imported by the real command into an empty
tenant on its own topic, folded by a real aggregator. Rows/s counts from the command's start to the
moment the tenant's watermark holds every event: reading, mapping, checking, producing and folding.
Meanwhile a client sends single Bearer events to a live ingest process on the same topic at a steady
rate, as webhooks would arrive: their p99 shows what an import costs live traffic. The CPU seconds of
the command, the aggregator, Postgres and the broker over the import say where the time went.
"""

from __future__ import annotations

import csv
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import stack as st
from services.core.crm_values import salesforce_long_id

TENANT = "bench-import"
LIVE_TENANT = "bench-live"
TOPIC = "bench.import"
LIVE_RATE = 200.0  # live events/s during the import
# Share of the rows per export; a task is one event, a lead one, an opportunity two (created, closed).
SHARES = {"Task": 0.7, "Lead": 0.15, "Opportunity": 0.15}
_TASK = (
    "Id,OwnerId,WhoId,Subject,ActivityDate,Status,Type,TaskSubtype,CallType,CallDurationInSeconds,"
    "CallDisposition,IsClosed,CreatedDate,CompletedDateTime"
).split(",")
_LEAD = ["Id", "OwnerId", "Status", "LeadSource", "IsConverted", "CreatedDate", "LastModifiedDate"]
_OPPORTUNITY = ["Id", "OwnerId", "StageName", "Amount", "CloseDate", "CreatedDate", "IsClosed", "IsWon",
                "LeadSource"]  # fmt: skip
_SOURCES = ["Web", "Trade Show", "Partner Referral", "Purchased List", "Webinar"]


def _id(prefix: str, n: int) -> str:
    return salesforce_long_id(f"{prefix}5e{n:010d}")


def write_exports(folder: Path, rows: int, seed: int = 5) -> tuple[list[Path], int]:
    """The export files and how many distinct events they hold."""
    rnd = random.Random(seed)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    users = [_id("005", i) for i in range(50)]

    def stamp() -> str:
        return (start + timedelta(seconds=rnd.randrange(300 * 86400))).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    counts = {name: int(rows * share) for name, share in SHARES.items()}
    makers: dict[str, tuple[list[str], Callable[[int], list[str]]]] = {
        "Task": (_TASK, lambda i: _task(rnd, i, users, stamp())),
        "Lead": (_LEAD, lambda i: _lead(rnd, i, users, stamp(), stamp())),
        "Opportunity": (_OPPORTUNITY, lambda i: _opportunity(rnd, i, users, stamp())),
    }
    paths = []
    for name, (header, make) in makers.items():
        path = folder / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            out = csv.writer(f, quoting=csv.QUOTE_ALL)
            out.writerow(header)
            out.writerows(make(i) for i in range(counts[name]))
        paths.append(path)
    return paths, counts["Task"] + counts["Lead"] + 2 * counts["Opportunity"]


def _task(rnd: random.Random, i: int, users: list[str], at: str) -> list[str]:
    call = rnd.random() < 0.75
    result = rnd.choice(["Connected", "Left voicemail", "No answer"]) if call else ""
    kind = "Call" if call else "Email"
    return [_id("00T", i), rnd.choice(users), _id("00Q", rnd.randrange(50_000)), kind, at[:10], "Completed",
            kind, kind, "Outbound" if call else "", str(rnd.randrange(900)) if call else "", result, "true",
            at, at]  # fmt: skip


def _lead(rnd: random.Random, i: int, users: list[str], created: str, modified: str) -> list[str]:
    return [_id("00Q", i), rnd.choice(users), "Working", rnd.choice(_SOURCES), "false", created, modified]


def _opportunity(rnd: random.Random, i: int, users: list[str], at: str) -> list[str]:
    won = rnd.random() < 0.4
    return [_id("006", i), rnd.choice(users), "Closed Won" if won else "Closed Lost",
            f"{rnd.randrange(1_000, 90_000)}.00", at[:10], at, "true", "true" if won else "false",
            rnd.choice(_SOURCES)]  # fmt: skip


class LiveTraffic:
    """Single Bearer events to ingest at `rate`/s in a thread; their latencies in ms."""

    def __init__(self, url: str, tenant: str, key: str, rate: float = LIVE_RATE) -> None:
        self.url, self.tenant, self.key, self.rate = url, tenant, key, rate
        self.latencies_ms: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.url, timeout=10) as client:
            i, began = 0, time.perf_counter()
            while not self._stop.is_set():
                event = {"event_id": f"live-{i}", "type": "email.sent", "rep_id": f"live-{i % 20}",
                         "occurred_at": datetime.now(UTC).isoformat()}  # fmt: skip
                sent = time.perf_counter()
                r = client.post(f"/v1/events/{self.tenant}", json=event, headers=headers)
                self.latencies_ms.append((time.perf_counter() - sent) * 1000)
                self.failures += r.status_code != 202
                i += 1
                pause = began + i / self.rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def run(
    stack: st.Stack, rows: int, wait_assigned: Callable[[st.Service], None], log: Callable[[str], None]
) -> dict[str, Any]:
    folder = stack.work / "import"
    folder.mkdir(exist_ok=True)
    paths, events = write_exports(folder, rows)
    log(f"wrote {rows:,} rows ({events:,} events) of Salesforce exports")
    stack.create_topic(TOPIC)
    stack.tenant(TENANT, ["ingest"])
    live_key = stack.tenant(LIVE_TENANT, ["ingest"])
    env = {"SALESLOOP_EVENTS_TOPIC": TOPIC}
    aggregator = stack.aggregator("aggregator-import", SALESLOOP_CONSUMER_GROUP="bench-import", **env)
    ingest = stack.ingest(**env)
    live = LiveTraffic(f"http://127.0.0.1:{ingest.port}", LIVE_TENANT, live_key)
    try:
        wait_assigned(aggregator)
        live.start()
        time.sleep(2.0)  # live traffic's own steady state before the import starts
        before = len(live.latencies_ms)
        cpu = st.CpuMeter(stack, aggregator.pid)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        command = [
            sys.executable,
            "-m",
            "services.cli",
            "import",
            "salesforce",
            *map(str, paths),
            "--tenant",
            TENANT,
        ]
        done = subprocess.run(command, env={**stack.env, **env}, capture_output=True, text=True, timeout=3600)
        sent = time.perf_counter()
        ran = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"salesloop import failed: {done.stderr[-2000:]}")
        while st.folded(stack.dsn, TENANT) < events:
            if time.perf_counter() - sent > 600:
                raise TimeoutError(f"{st.folded(stack.dsn, TENANT)} of {events} imported events folded")
            time.sleep(0.05)
        folded_at = time.perf_counter()
        used = cpu.stop()
        during = live.latencies_ms[before:]
    finally:
        live.stop()
        ingest_rss = ingest.stop()
        aggregator_rss = aggregator.stop()
    folded = st.folded(stack.dsn, TENANT)
    result = {
        "rows": rows,
        "events": events,
        "exactly_once": folded == events,
        "command_seconds": round(sent - began, 2),
        "seconds": round(folded_at - began, 2),
        "rows_per_s": round(rows / (folded_at - began)),
        "command_rows_per_s": round(rows / (sent - began)),
        "live_rate": LIVE_RATE,
        "live_requests": len(during),
        "live_failures": live.failures,
        "live_p50_ms": _percentile(during, 0.50),
        "live_p99_ms": _percentile(during, 0.99),
        "peak_rss_mb": {"ingest": ingest_rss, "aggregator": aggregator_rss},
        # CPU seconds from the command's start until everything was folded (the command: until it exited).
        "cpu_s": {
            "command": round(ran.ru_utime + ran.ru_stime - children.ru_utime - children.ru_stime, 1),
            "aggregator": used["service"],
            "postgres": used["postgres"],
            "broker": used["broker"],
        },
    }
    log(
        f"import: {rows:,} rows in {result['seconds']} s: {result['rows_per_s']:,} rows/s CSV to folded "
        f"(the command alone {result['command_rows_per_s']:,} rows/s); live ingest p99 "
        f"{result['live_p99_ms']} ms over {len(during)} requests; exactly once {result['exactly_once']}; "
        f"CPU s {result['cpu_s']}"
    )
    return result
