"""The aggregator's peers on the same topic and data: the naive consumer and Quix Streams.

Each runs in its own process with its own consumer group, reading the backlog from the start.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench import naive
from bench import stack as st
from bench.folding import Backlog

HERE = Path(__file__).resolve().parent
QUIX_TABLE = "quix_rollup_rep_daily"


def run_naive(stack: st.Stack, backlog: Backlog, seconds: float, group: str) -> dict[str, Any]:
    """The naive consumer, time-boxed to `seconds` from its first message."""
    asyncio.run(st.execute(stack.dsn, *naive.setup_sql()))
    spec = {
        "bootstrap": stack.broker.bootstrap,
        "topic": backlog.topic,
        "group": group,
        "dsn": stack.dsn,
        "seconds": seconds,
        "expected": backlog.messages,
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench.naive"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        check=True,
        cwd=HERE.parent,
        timeout=seconds + 120,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    counted = asyncio.run(st.fetchval(stack.dsn, f"SELECT coalesce(sum(events), 0) FROM {naive.REP_TABLE}"))
    if int(counted) != result["events"]:
        raise RuntimeError(f"naive consumer counted {counted} rows of {result['events']} events")
    return {
        "events_per_s": round(result["events"] / result["seconds"]),
        "events": result["events"],
        "seconds": round(result["seconds"], 1),
    }


def _postgres(database_url: str) -> dict[str, Any]:
    """The embedded server's socket directory, port and database, as psycopg2 takes them."""
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    return {
        "host": query.get("host", [parts.hostname or "127.0.0.1"])[0],
        "port": parts.port or 5432,
        "dbname": parts.path.lstrip("/"),
        "user": parts.username or "postgres",
    }


def _port(stack: st.Stack) -> int:
    """The embedded server's port (its socket is named after it)."""
    sql = "SELECT setting::int FROM pg_settings WHERE name = 'port'"
    return int(asyncio.run(st.fetchval(stack.dsn, sql)))


def run_quix(
    stack: st.Stack, backlog: Backlog, python: Path, max_seconds: float, group: str
) -> dict[str, Any]:
    """Quix Streams over the whole backlog (or `max_seconds` of it), in bench/.venv's interpreter."""
    asyncio.run(
        st.execute(
            stack.dsn,
            f"DROP TABLE IF EXISTS {QUIX_TABLE}",
            f"CREATE TABLE {QUIX_TABLE} (LIKE rollup_rep_daily INCLUDING ALL)",
        )
    )
    work = stack.work / "quix" / group
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    postgres = _postgres(stack.database_url) | {"port": _port(stack)}
    spec = {
        "bootstrap": stack.broker.bootstrap,
        "topic": backlog.topic,
        "group": group,
        "state_dir": str(work / "state"),
        "expected": backlog.messages,
        "max_seconds": max_seconds,
        "postgres": postgres,
        "table": QUIX_TABLE,
    }
    (work / "spec.json").write_text(json.dumps(spec))
    result_path = work / "result.json"
    started = time.perf_counter()
    with (stack.work / "logs" / f"quix-{group}.log").open("wb") as log:
        subprocess.run(
            [str(python), str(HERE / "quix_peer.py"), str(work / "spec.json"), str(result_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=max_seconds + 180,
        )
    result = json.loads(result_path.read_text())
    emitted = asyncio.run(st.fetchval(stack.dsn, f"SELECT coalesce(sum(events), 0) FROM {QUIX_TABLE}"))
    return {
        "events_per_s": round(result["events"] / result["seconds"]),
        "events": result["events"],
        "seconds": round(result["seconds"], 1),
        "process_seconds": round(time.perf_counter() - started, 1),
        # Windows still open at the stop are never emitted by .final(): the last day of each rep.
        "events_in_closed_windows": int(emitted),
    }
