"""Results: medians and spread over runs, the targets, and the table `make bench` prints."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def spread(values: Sequence[float], digits: int = 1) -> dict[str, Any]:
    """Median, min, max and (max - min) / median over the runs."""
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {
        "median": round(med, digits),
        "min": round(lo, digits),
        "max": round(hi, digits),
        "spread_pct": round(100 * (hi - lo) / med, 1) if med else 0.0,
        "runs": [round(v, digits) for v in values],
    }


# (result key, what, target as text, check)
TARGETS: list[tuple[str, str, str, Callable[[Any], bool]]] = [
    (
        "aggregator_events_per_s",
        "aggregator events/s (archive+dedupe+rollups+offsets)",
        ">= 20,000",
        lambda v: v >= 20_000,
    ),
    ("aggregator_vs_naive", "aggregator / naive consumer, same job", ">= 10x", lambda v: v >= 10),
    ("aggregator_vs_quix", "aggregator / Quix Streams, same job", ">= 3x", lambda v: v >= 3),
    ("ingest_single_req_per_s", "ingest signed single-event webhooks req/s", ">= 2,500", lambda v: v >= 2500),
    ("ingest_single_p99_ms", "ingest signed single-event p99 ms", "<= 50", lambda v: v <= 50),
    ("ingest_batch_events_per_s", "ingest batched events/s", ">= 25,000", lambda v: v >= 25_000),
    (
        "freshness_p99_ms",
        "freshness p99 ms (202 -> visible in API) at 1k events/s",
        "<= 1,000",
        lambda v: v <= 1000,
    ),
    (
        "pipeline_p99_ms_max",
        "pipeline reads p99 ms, slowest read, ten years of deal history",
        "<= 25",
        lambda v: v <= 25,
    ),
    ("api_p99_ms.economics_summary", "api p99 ms economics summary (200 reps)", "<= 25", lambda v: v <= 25),
    ("api_p99_ms.planning_fit", "api p99 ms planning fit (200 reps)", "<= 25", lambda v: v <= 25),
    ("api_p99_ms.planning_capacity", "api p99 ms planning capacity (200 reps)", "<= 25", lambda v: v <= 25),
    ("peak_rss_mb.ingest", "ingest peak RSS MiB", "<= 200", lambda v: v <= 200),
    ("peak_rss_mb.api", "api peak RSS MiB", "<= 200", lambda v: v <= 200),
    ("peak_rss_mb.aggregator", "aggregator peak RSS MiB", "<= 400", lambda v: v <= 400),
    (
        "aggregator_rss_backlog.growth_in_run_pct",
        "aggregator RSS growth from the first tenth of the backlog to all of it",
        "<= 10%",
        lambda v: v <= 10,
    ),
    ("scale_out.ok", "scale-out: both members own partitions, exactly once", "yes", lambda v: v is True),
    (
        "conversation_calls_per_s",
        "30-minute calls (300 segments) analysed per second, one core",
        ">= 200",
        lambda v: v >= 200,
    ),
    (
        "conversation_fold_ratio",
        "aggregator events/s with the conversation fold / without it",
        ">= 0.95",
        lambda v: v >= 0.95,
    ),
]

# Shown in the table without a target.
INFO = [
    ("aggregator_rss_backlog.rss_small_mb", "aggregator peak RSS MiB, backlog N/10 (own run)"),
    ("aggregator_rss_backlog.rss_large_mb", "aggregator peak RSS MiB, backlog N"),
    (
        "naive_events_per_s",
        "naive consumer events/s, same job (archive + dedupe, 2 rollups, offsets; row by row)",
    ),
    ("naive_rollups_only_events_per_s", "naive consumer events/s, 2 rollups only (no archive/dedupe)"),
    ("aggregator_vs_naive_rollups_only", "aggregator / naive consumer, 2 rollups only"),
    ("quix_events_per_s", "Quix Streams events/s, same job (state dedupe, rep + channel rollup)"),
    ("quix_rep_only_events_per_s", "Quix Streams events/s, rep rollup only (1-day .final(), no dedupe)"),
    ("aggregator_vs_quix_rep_only", "aggregator / Quix Streams, rep rollup only"),
    (
        "quix_hourly_rep_only_events_per_s",
        "Quix Streams events/s, reference config (1-hour windows, rep only, no dedupe)",
    ),
    ("aggregator_vs_quix_hourly_rep_only", "aggregator / Quix Streams, reference config"),
    ("ingest_single_p50_ms", "ingest signed single-event p50 ms"),
    ("ingest_twilio_req_per_s", "ingest Twilio form callbacks req/s"),
    ("ingest_twilio_p99_ms", "ingest Twilio form callbacks p99 ms"),
    ("ingest_bearer_req_per_s", "ingest Bearer-key single-event req/s"),
    ("ingest_batch_p99_ms", "ingest batch (100 events) p99 ms"),
    ("freshness_p50_ms", "freshness p50 ms"),
    ("scale_out.events_per_s", "scale-out events/s (2 aggregators)"),
]


def lookup(results: dict[str, Any], key: str) -> Any:
    value: Any = results
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def targets(results: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, _, target, check in TARGETS:
        value = lookup(results, key)
        out[key] = {"target": target, "value": value, "met": None if value is None else check(value)}
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else json.dumps(value)


def _runs(results: dict[str, Any], key: str) -> str:
    detail = results.get("spread", {}).get(key)
    if not detail or len(detail["runs"]) < 2:
        return ""
    return f"{_fmt(detail['min'])} .. {_fmt(detail['max'])} ({detail['spread_pct']:.0f}%)"


def print_table(results: dict[str, Any]) -> None:
    table = Table(title=f"salesloop bench {results['date']} ({results['machine']['cpus']} CPUs)")
    for column in ("what", "value", "runs: min .. max (spread)", "target", "met"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for key, what, target, _ in TARGETS:
        met = results["targets"][key]["met"]
        mark = "-" if met is None else ("yes" if met else "NO")
        table.add_row(what, _fmt(lookup(results, key)), _runs(results, key), target, mark)
    for key, what in INFO:
        if lookup(results, key) is not None:
            table.add_row(what, _fmt(lookup(results, key)), _runs(results, key), "", "")
    for endpoint, ms in (results.get("api_p99_ms") or {}).items():
        table.add_row(f"api p99 ms {endpoint}", _fmt(ms), "", "", "")
    Console(width=150).print(table)
