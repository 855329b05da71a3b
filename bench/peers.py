"""The aggregator's peers on the same topic and data: the naive consumer and Quix Streams.

Each variant runs in its own process with its own consumer group, reading the backlog from the
start, right after the aggregator folded it: the aggregator's rollups (checked exactly once by then)
are the reference that the peers' rows are compared with.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg

from bench import naive
from bench import stack as st
from bench.folding import Backlog
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS

HERE = Path(__file__).resolve().parent
QUIX_TABLES = {
    "rep": "quix_rollup_rep_daily",
    "channel": "quix_rollup_channel_daily",
    "hourly": "quix_rollup_rep_hourly",
}
# The reference configuration's table, as the reference measurements created it.
HOURLY_DDL = f"""
CREATE TABLE {QUIX_TABLES["hourly"]} (
  tenant text NOT NULL, rep_id text NOT NULL, hour timestamptz NOT NULL, type text NOT NULL,
  n bigint NOT NULL, duration_s bigint NOT NULL, amount numeric(18, 2) NOT NULL,
  PRIMARY KEY (tenant, rep_id, hour, type))
"""


Peer = Callable[[Backlog, str], dict[str, Any]]


def variants(
    stack: st.Stack, python: Path, naive_seconds: float, quix_seconds: float, quix_hourly_messages: int
) -> dict[str, Peer]:
    """Every peer variant by its name in results.json, each taking (backlog, consumer group): the same
    job first, then the lighter ones; the reference configuration only with a message count > 0."""

    def naive(mode: str) -> Peer:
        return lambda b, group: run_naive(stack, b, naive_seconds, group, mode)

    def quix(variant: str, messages: int | None = None) -> Peer:
        return lambda b, group: run_quix(stack, b, python, variant, quix_seconds, group, messages)

    out = {
        "naive": naive("same_job"),
        "naive_rollups_only": naive("rollups_only"),
        "quix": quix("same_job"),
        "quix_rep_only": quix("rep_only"),
    }
    if quix_hourly_messages > 0:
        out["quix_hourly_rep_only"] = quix("hourly_rep_only", quix_hourly_messages)
    return out


def run_naive(stack: st.Stack, backlog: Backlog, seconds: float, group: str, mode: str) -> dict[str, Any]:
    """One naive variant (see bench/naive.py), time-boxed to `seconds` from its first message.

    Its rollups must count exactly the events it folded: for `same_job` the distinct events it
    archived, for `rollups_only` every message it read.
    """
    asyncio.run(st.execute(stack.dsn, *naive.setup_sql()))
    spec = {
        "bootstrap": stack.broker.bootstrap,
        "topic": backlog.topic,
        "group": group,
        "dsn": stack.dsn,
        "seconds": seconds,
        "expected": backlog.messages,
        "mode": mode,
    }
    result = st.run_module("bench.naive", spec, seconds + 120)
    counted = asyncio.run(_naive_counts(stack.dsn))
    folded, messages = result["folded"], result["messages"]
    if mode == "same_job":
        wanted = {"rep": folded, "channel": counted["with_channel"], "archived": folded, "offsets": messages}
    else:
        wanted = {"rep": messages}  # redeliveries included
    wrong = {k: (counted[k], v) for k, v in wanted.items() if counted[k] != v}
    if wrong:
        raise RuntimeError(f"naive consumer ({mode}) not exactly once: (counted, expected) {wrong}")
    return {
        "events_per_s": round(messages / result["seconds"]),
        "messages": messages,
        "events_folded": folded,
        "redeliveries_skipped": messages - folded if mode == "same_job" else 0,
        "seconds": round(result["seconds"], 1),
        "exactly_once": mode == "same_job",
    }


async def _naive_counts(dsn: str) -> dict[str, int]:
    sql = {
        "rep": f"SELECT coalesce(sum(events), 0) FROM {naive.REP_TABLE}",
        "channel": f"SELECT coalesce(sum(events), 0) FROM {naive.CHANNEL_TABLE}",
        "archived": f"SELECT count(*) FROM {naive.ARCHIVE_TABLE}",
        "with_channel": f"SELECT count(*) FROM {naive.ARCHIVE_TABLE} WHERE payload ? 'channel'",
        # Offsets of a partition are dense from 0 here: their sum is the messages read.
        "offsets": f"SELECT coalesce(sum(next_offset), 0) FROM {naive.OFFSETS_TABLE}",
    }
    conn = await asyncpg.connect(dsn)
    try:
        return {k: int(await conn.fetchval(q)) for k, q in sql.items()}
    finally:
        await conn.close()


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
    stack: st.Stack,
    backlog: Backlog,
    python: Path,
    variant: str,
    max_seconds: float,
    group: str,
    max_messages: int | None = None,
) -> dict[str, Any]:
    """One Quix Streams variant (see bench/quix_peer.py) in bench/.venv's interpreter, over the backlog
    or its first `max_messages`, for at most `max_seconds`."""
    asyncio.run(
        st.execute(
            stack.dsn,
            f"DROP TABLE IF EXISTS {', '.join(QUIX_TABLES.values())}",
            f"CREATE TABLE {QUIX_TABLES['rep']} (LIKE rollup_rep_daily INCLUDING ALL)",
            f"CREATE TABLE {QUIX_TABLES['channel']} (LIKE rollup_channel_daily INCLUDING ALL)",
            HOURLY_DDL,
        )
    )
    work = stack.work / "quix" / group
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    expected = min(backlog.messages, max_messages or backlog.messages)
    spec = {
        "variant": variant,
        "bootstrap": stack.broker.bootstrap,
        "topic": backlog.topic,
        "group": group,
        "state_dir": str(work / "state"),
        "expected": expected,
        "max_seconds": max_seconds,
        "postgres": _postgres(stack.database_url) | {"port": _port(stack)},
        "tables": {"rep": QUIX_TABLES["hourly" if variant == "hourly_rep_only" else "rep"]}
        | {"channel": QUIX_TABLES["channel"]},
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
    out: dict[str, Any] = {
        "events_per_s": round(result["messages"] / result["seconds"]),
        "messages": result["messages"],
        "complete": result["messages"] >= expected,
        "seconds": round(result["seconds"], 1),
        "process_seconds": round(time.perf_counter() - started, 1),
        "late_dropped": result["late_dropped"],
    }
    if variant == "hourly_rep_only":
        sql = f"SELECT coalesce(sum(n), 0) FROM {QUIX_TABLES['hourly']}"
        out["events_in_closed_windows"] = int(asyncio.run(st.fetchval(stack.dsn, sql)))
        out["exactly_once"] = False
        return out
    rollups = {"rep": _compare(stack.dsn, backlog.tenant, "rep")}
    if variant == "rep_only":
        # .final() never writes the windows still open at the stop: the last day of each rep.
        out["events_in_closed_windows"] = rollups["rep"]["events"]
        out["rollups"] = rollups
        out["exactly_once"] = False
        return out
    rollups["channel"] = _compare(stack.dsn, backlog.tenant, "channel")
    out |= {
        "distinct": result["distinct"],
        "redeliveries_skipped": result["read"] - result["distinct"],
        "max_behind_s": result["max_behind_s"],
        "rollups": rollups,
    }
    # The rows count every event that passed the dedupe, none of them more often than the aggregator
    # does; once the whole backlog is read, every row equals the aggregator's and none is missing.
    problems = [
        rollups["rep"]["events"] != result["distinct"],
        rollups["channel"]["events"] != result["channel_stage"],
        any(r["over_counted"] for r in rollups.values()),
        any(result["late_dropped"].values()),
    ]
    if out["complete"]:
        problems.append(result["distinct"] != backlog.distinct)
        problems += [r["differing"] > 0 or r["windows_not_emitted"] > 0 for r in rollups.values()]
    out["exactly_once"] = not any(problems)
    if not out["exactly_once"]:
        raise RuntimeError(f"Quix Streams ({variant}) not exactly once: {out}")
    return out


def _compare(dsn: str, tenant: str, rollup: str) -> dict[str, int]:
    """Quix's rows against the aggregator's for the same keys and days: how many differ, the events
    they count more and fewer than the aggregator, and the aggregator's rows Quix did not write."""
    real, key, counters = {
        "rep": ("rollup_rep_daily", "rep_id", REP_COUNTERS),
        "channel": ("rollup_channel_daily", "channel", CHANNEL_COUNTERS),
    }[rollup]
    q_row = ", ".join(f"q.{c}" for c in counters)
    a_row = ", ".join(f"a.{c}" for c in counters)
    emitted = f"""
    SELECT count(*), coalesce(sum(q.events), 0),
           count(*) FILTER (WHERE a.tenant IS NULL OR ({q_row}) IS DISTINCT FROM ({a_row})),
           coalesce(sum(greatest(q.events - coalesce(a.events, 0), 0)), 0),
           coalesce(sum(greatest(a.events - q.events, 0)), 0)
    FROM {QUIX_TABLES[rollup]} q LEFT JOIN {real} a USING (tenant, {key}, day)
    """
    open_windows = f"""
    SELECT count(*), coalesce(sum(events), 0) FROM {real} a
    WHERE tenant = $1 AND NOT EXISTS (
      SELECT FROM {QUIX_TABLES[rollup]} q WHERE (q.tenant, q.{key}, q.day) = (a.tenant, a.{key}, a.day))
    """

    async def fetch() -> tuple[Any, Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchrow(emitted), await conn.fetchrow(open_windows, tenant)
        finally:
            await conn.close()

    e, o = asyncio.run(fetch())
    return {
        "windows": int(e[0]),
        "events": int(e[1]),
        "differing": int(e[2]),
        "over_counted": int(e[3]),
        "under_counted": int(e[4]),
        "windows_not_emitted": int(o[0]),
        "events_not_emitted": int(o[1]),
    }
