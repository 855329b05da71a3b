"""`make bench`: the aggregator against its peers, ingest, freshness, API reads, scale-out and memory.

Everything runs on this machine: broker, Postgres, the services under test and the load generators
share its cores, so compare ratios from one run rather than absolute numbers across machines.
Phases (each on its own topic and tenant, so none inherits another's backlog):

  backlog    the aggregator on N/10 events: its peak RSS, to compare with the N-event run
  aggregator N events (+3% redeliveries) preloaded, folded by the real aggregator; then, on the same
             topic and data, its peers: the naive consumer and Quix Streams doing the same job (archive
             or state dedupe, both rollups), and their lighter variants (bench/peers.py)
  scaleout   two aggregators in one consumer group on N/2 events: both own partitions, exactly once
  conversations  30-minute transcripts analysed per CPU second; the aggregator on N events without and
             with the conversation fold, and with 1 % of the calls transcribed (bench/conversations.py)
  ingest     signed single-event webhooks (Standard Webhooks, Twilio), Bearer, and 100-event batches
  freshness  1k events/s through ingest; 202 -> visible in GET /v1/reps/{rep}/metrics
  api        bench/api_reads.py, when present (its tenant with a year of conversation rollups too)
  pipeline   bench/pipeline_reads.py: the pipeline reads over a year of deal history, then ten years
  importing  salesloop import of Salesforce exports: rows/s from CSV to folded, live ingest p99 meanwhile
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil
from rich.console import Console

from bench import conversations, folding, importing, peers, report, workload
from bench import ingest as ingest_bench
from bench import stack as st
from bench.folding import Backlog
from services.core.tenancy import SCOPES

HERE = Path(__file__).resolve().parent
PHASES = (
    "backlog",
    "aggregator",
    "scaleout",
    "conversations",
    "ingest",
    "freshness",
    "api",
    "pipeline",
    "importing",
)
TENANT = "bench"
FRESHNESS_WARMUP_S = 5.0
FRESHNESS_PROBES_PER_S = 5
FRESHNESS_POLL_MS = 20
API_TENANT = "bench-api"
PIPELINE_TENANT = "bench-pipeline"
# Tables that hold configuration, not folded state: kept when the folded state is reset between runs.
CONFIG_TABLES = (
    "alembic_version",
    "tenants",
    "tenant_secrets",
    "api_keys",
    "tenant_source_settings",
    "rep_aliases",
    "channel_spend",
    "scorecards",
)
console = Console(stderr=True, width=150)


def log(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")


def reset_folded_state(stack: st.Stack) -> None:
    """Empties archive, rollups, offsets and every other table the aggregator writes."""
    sql = "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables WHERE schemaname = 'public' "
    sql += "AND tablename <> all($1::text[])"
    tables = asyncio.run(st.fetchval(stack.dsn, sql, list(CONFIG_TABLES)))
    asyncio.run(st.execute(stack.dsn, f"TRUNCATE {tables}", "CHECKPOINT"))


def wait_assigned(service: st.Service, timeout_s: float = 60.0) -> None:
    """Until the aggregator owns partitions: joining the group is start-up, not freshness."""
    deadline = time.monotonic() + timeout_s
    while st.scrape(service.url).get("salesloop_aggregator_assigned_partitions", 0.0) == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the aggregator owns no partition after {timeout_s:.0f} s")
        time.sleep(0.2)


def backlog_for(stack: st.Stack, tenant: str, topic: str, distinct: int, seed: int) -> Backlog:
    if topic != stack.settings.events_topic:
        stack.create_topic(topic)
        stack.tenant(tenant, ["ingest"])
    events = list(workload.events(distinct, seed=seed))
    stream = workload.with_duplicates(events, 0.03)
    rate = asyncio.run(st.preload(stack.broker.bootstrap, topic, tenant, stream))
    log(f"preloaded {len(stream):,} messages ({distinct:,} distinct) into {topic} at {rate:,.0f} msg/s")
    return Backlog(tenant, topic, len(stream), distinct)


class Runner:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {"peak_rss_mb": {}, "spread": {}}
        self._api: st.Service | None = None
        self.stack = st.Stack(HERE / ".work")
        self.secrets = {"webhooks": st.webhook_secret(), "twilio": "bench-twilio-auth-token"}
        self.keys = {
            "ingest": self.stack.tenant(TENANT, ["ingest"], self.secrets),
            "read": self.stack.key(TENANT, st.READ_SCOPES),
            # bench/api_reads.py loads and reads its own tenant's data.
            "api": self.stack.tenant(API_TENANT, sorted(SCOPES)),
        }
        tools = Path(args.tools_python).parent / "py-spy"
        self.py_spy = tools if args.profile and tools.exists() else None
        self.profiles = self.stack.work / "profiles" if args.profile else None
        if self.profiles is not None:
            self.profiles.mkdir()
            self.stack.enable_statement_stats()
            if self.py_spy is None:
                log(f"[yellow]no py-spy at {tools}: Python profiles skipped[/yellow]")

    def peak(self, service: str, mb: float) -> None:
        rss = self.results["peak_rss_mb"]
        rss[service] = max(rss.get(service, 0.0), mb)

    def median(self, key: str, values: list[float], digits: int = 1) -> float:
        self.results["spread"][key] = report.spread(values, digits)
        return round(statistics.median(values), digits)

    def backlog(self) -> None:
        small = max(1000, self.args.events // 10)
        b = backlog_for(self.stack, "backlog-small", "bench.backlog-small", small, seed=11)
        r = folding.fold_backlog(self.stack, b, "bench-backlog-small")
        log(f"aggregator on {small:,} events: peak RSS {r['peak_rss_mb']} MiB")
        self.results["aggregator_rss_backlog"] = {"events_small": small, "rss_small_mb": r["peak_rss_mb"]}
        reset_folded_state(self.stack)

    def aggregator(self) -> None:
        b = backlog_for(self.stack, TENANT, self.stack.settings.events_topic, self.args.events, seed=7)
        a = self.args
        variants = peers.variants(
            self.stack, Path(a.tools_python), a.naive_seconds, a.quix_seconds, a.quix_hourly_messages
        )
        names = ["aggregator", *variants]
        runs: dict[str, list[Any]] = {name: [] for name in names}
        for r in range(self.args.runs):
            if r:
                reset_folded_state(self.stack)
            profiles = self.profiles if not r else None
            agg = folding.fold_backlog(self.stack, b, f"bench-agg-{r}", profiles, self.py_spy)
            self.peak("aggregator", agg["peak_rss_mb"])
            runs["aggregator"].append(agg)
            log(f"aggregator run {r + 1}: {agg['events_per_s']:,} events/s over {agg['messages']:,} messages")
            for name, peer in variants.items():
                result = peer(b, f"bench-{name.replace('_', '-')}-{r}")
                runs[name].append(result)
                log(
                    f"{name} run {r + 1}: {result['events_per_s']:,} events/s over {result['messages']:,} "
                    f"messages in {result['seconds']} s (exactly once: {result['exactly_once']})"
                )
        if self.profiles is not None:
            self.ablation(b, runs["aggregator"][0]["events_per_s"])
        res = self.results
        for name in names:
            res[f"{name}_events_per_s"] = self.median(
                f"{name}_events_per_s", [x["events_per_s"] for x in runs[name]]
            )
            res[name] = runs[name]
            if name != "aggregator":
                ratios = [
                    a["events_per_s"] / p["events_per_s"]
                    for a, p in zip(runs["aggregator"], runs[name], strict=True)
                ]
                res[f"aggregator_vs_{name}"] = self.median(f"aggregator_vs_{name}", ratios, 2)
        memory = res.get("aggregator_rss_backlog")
        if memory is not None:
            big = max(a["peak_rss_mb"] for a in runs["aggregator"])
            tenth = max(a["peak_rss_first_tenth_mb"] for a in runs["aggregator"])
            memory |= {
                "events_large": self.args.events,
                "rss_large_mb": big,
                "rss_large_first_tenth_mb": tenth,
            }
            memory["growth_pct"] = round(100 * (big - memory["rss_small_mb"]) / memory["rss_small_mb"], 1)
            memory["growth_in_run_pct"] = round(100 * (big - tenth) / tenth, 1)

    def ablation(self, b: Backlog, full: float) -> None:
        """The same backlog with stateful folds switched off: what each costs in events/s."""
        out = {"all folds": full}
        for without in (["leads"], ["all"]):
            reset_folded_state(self.stack)
            r = folding.fold_backlog(self.stack, b, f"bench-ablate-{without[0]}", without=without)
            out[f"without {without[0]}"] = r["events_per_s"]
            log(f"aggregator without {without[0]} state folds: {r['events_per_s']:,} events/s")
        self.results["aggregator_ablation"] = out

    def scaleout(self) -> None:
        b = backlog_for(self.stack, "scale", "bench.scale", max(1000, self.args.events // 2), seed=13)
        r = folding.scale_out(self.stack, b, "bench-scale")
        r["ok"] = (
            r["both_assigned"] and r["exactly_once"] and all(n > 0 for n in r["events_folded_per_member"])
        )
        self.results["scale_out"] = r
        for mb in r["peak_rss_mb"]:
            self.peak("aggregator", mb)
        log(
            f"scale-out: {r['events_per_s']:,} events/s, partitions {r['max_assigned_partitions']}, "
            f"folded per member {r['events_folded_per_member']}, exactly once {r['exactly_once']}"
        )

    def conversations(self) -> None:
        r = conversations.run(
            self.stack, self.args.events, self.args.runs, lambda: reset_folded_state(self.stack), log
        )
        self.results["conversations"] = r
        self.results["conversation_calls_per_s"] = r["analysis"]["calls_per_s"]
        self.results["conversation_fold_ratio"] = r["fold"]["fold_ratio"]
        for runs in r["fold"]["runs"].values():
            for result in runs:
                self.peak("aggregator", result["peak_rss_mb"])

    def ingest(self) -> None:
        self.stack.create_topic("bench.ingest")
        service = self.stack.ingest(
            SALESLOOP_EVENTS_TOPIC="bench.ingest", SALESLOOP_PUBLIC_BASE_URL=ingest_bench.PUBLIC_BASE_URL
        )
        target = ingest_bench.Target(
            service.port, TENANT, self.keys["ingest"], self.secrets["webhooks"], self.secrets["twilio"]
        )
        runs: list[dict[str, Any]] = []
        try:
            for r in range(self.args.runs):
                profile = self.profiles if self.py_spy and not r else None
                runs.append(
                    ingest_bench.run(
                        target,
                        self.args.seconds,
                        self.args.concurrency,
                        log,
                        self.py_spy,
                        service.pid,
                        profile,
                    )
                )
        finally:
            self.peak("ingest", service.stop())
        res = self.results
        res["ingest"] = runs
        res["ingest_concurrency"] = self.args.concurrency
        for name in runs[0]:
            for what in ("req_per_s", "p50_ms", "p99_ms"):
                res[f"ingest_{name}_{what}"] = self.median(
                    f"ingest_{name}_{what}", [x[name][what] for x in runs]
                )
        # "single": signed single-event webhooks, the Standard Webhooks scenario.
        for what in ("req_per_s", "p50_ms", "p99_ms"):
            res[f"ingest_single_{what}"] = res[f"ingest_webhook_{what}"]
            res["spread"][f"ingest_single_{what}"] = res["spread"][f"ingest_webhook_{what}"]
        batch = [x["batch"]["events_per_s"] for x in runs]
        res["ingest_batch_events_per_s"] = round(self.median("ingest_batch_events_per_s", batch))

    def api_service(self) -> st.Service:
        """The api process, shared by the freshness and api phases."""
        if self._api is None:
            self._api = self.stack.api()
        return self._api

    def freshness(self) -> None:
        self.stack.create_topic("bench.fresh")
        env = {"SALESLOOP_EVENTS_TOPIC": "bench.fresh", "SALESLOOP_CONSUMER_GROUP": "bench-fresh"}
        api = self.api_service()
        services = {
            "aggregator": self.stack.aggregator("aggregator-fresh", **env),
            "ingest": self.stack.ingest(**env),
        }
        try:
            wait_assigned(services["aggregator"])
            spec = {
                "ingest_port": services["ingest"].port,
                "api_port": api.port,
                "tenant": TENANT,
                "ingest_key": self.keys["ingest"],
                "api_key": self.keys["read"],
                "rate": self.args.freshness_rate,
                "seconds": self.args.freshness_seconds,
                "warmup_seconds": FRESHNESS_WARMUP_S,
                "probe_every": max(1, int(self.args.freshness_rate // FRESHNESS_PROBES_PER_S)),
                "poll_ms": FRESHNESS_POLL_MS,
                "connections": 32,
            }
            out = subprocess.run(
                [sys.executable, "-m", "bench.freshness"],
                input=json.dumps(spec).encode(),
                capture_output=True,
                check=True,
                cwd=HERE.parent,
                timeout=FRESHNESS_WARMUP_S + self.args.freshness_seconds + 120,
            )
            r = json.loads(out.stdout)
            metrics = st.scrape(services["aggregator"].url)
            r["aggregator"] = {
                what: st.histogram(metrics, f"salesloop_aggregator_{what}")
                for what in ("freshness_seconds", "batch_commit_seconds", "batch_size_events")
            }
        finally:
            for name, service in services.items():
                self.peak(name, service.stop())
        self.results["freshness"] = r
        self.results["freshness_p50_ms"] = r["p50_ms"]
        self.results["freshness_p99_ms"] = r["p99_ms"]
        log(
            f"freshness at {r['achieved_rate']:,.0f} events/s: p50 {r['p50_ms']} ms, "
            f"p99 {r['p99_ms']} ms ({r['probes_visible']} of {r['probes']} probes visible; "
            f"ingest p99 {r['ingest_p99_ms']} ms)"
        )

    def api(self) -> None:
        try:
            from bench import api_reads
        except ImportError:
            log("[yellow]bench/api_reads.py not present: API read latency skipped[/yellow]")
            return
        rows = asyncio.run(conversations.seed_rollups(self.stack.dsn, API_TENANT))
        log(f"api reads: seeded {rows:,} conversation rollup rows")
        api = self.api_service()
        r = api_reads.run(api.url, self.keys["api"], self.stack.dsn, API_TENANT, api_pid=api.pid)
        self.results["api"] = r
        self.results["api_p99_ms"] = r.get("api_p99_ms") or {
            name: v["p99_ms"] for name, v in r.items() if isinstance(v, dict) and "p99_ms" in v
        }
        log(f"api p99 ms: {self.results['api_p99_ms']}")

    def pipeline(self) -> None:
        from bench import pipeline_reads

        key = self.stack.tenant(PIPELINE_TENANT, ["pipeline:read"])
        r = pipeline_reads.run(self.api_service().url, key, self.stack.dsn, PIPELINE_TENANT, log=log)
        self.results["pipeline"] = r
        self.results["pipeline_p99_ms"] = r["pipeline_p99_ms"]
        self.results["pipeline_p99_ms_max"] = max(r["pipeline_p99_ms"].values())
        log(f"pipeline p99 ms after the history grew tenfold: {r['pipeline_p99_ms']}")

    def importing(self) -> None:
        r = importing.run(self.stack, self.args.import_rows, wait_assigned, log)
        self.results["import"] = r
        self.results["import_rows_per_s"] = r["rows_per_s"]
        self.results["import_live_p99_ms"] = r["live_p99_ms"]
        for name, mb in r["peak_rss_mb"].items():
            self.peak(name, mb)

    def run(self) -> dict[str, Any]:
        try:
            for phase in PHASES:
                if phase in self.args.phases:
                    log(f"[bold]{phase}[/bold]")
                    getattr(self, phase)()
        finally:
            if self._api is not None:
                self.peak("api", self._api.stop())
            self.stack.close()
        return self.results


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if "model name" in line
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def exclusive(path: Path) -> IO[bytes]:
    """One benchmark at a time on this machine: a second run would delete the first one's bench/.work
    and both would measure each other. The lock is held until the process exits."""
    handle = path.open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another benchmark holds {path}; waiting for it to finish")
        fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=200_000, help="distinct events in the aggregator backlog"
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat the aggregator, peer and ingest parts")
    parser.add_argument(
        "--naive-seconds", type=float, default=15.0, help="time box of each naive consumer variant"
    )
    parser.add_argument("--quix-seconds", type=float, default=120.0, help="time box of each Quix variant")
    parser.add_argument(
        "--quix-hourly-messages",
        type=int,
        default=100_000,
        help="messages for Quix in the reference configuration (1-hour windows); 0 skips it",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each ingest scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="load-generator connections for ingest")
    parser.add_argument("--freshness-rate", type=float, default=1000.0, help="events/s during freshness")
    parser.add_argument("--freshness-seconds", type=float, default=20.0)
    parser.add_argument("--import-rows", type=int, default=100_000, help="rows of CSV in the import phase")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument("--profile", action="store_true", help="py-spy profiles to bench/.work/profiles")
    parser.add_argument("--tools-python", default=str(HERE / ".venv" / "bin" / "python"), help="bench/.venv")
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {PHASES}")

    with exclusive(HERE / ".work.lock"):
        started = time.monotonic()
        results: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "load_average_before": [round(x, 2) for x in os.getloadavg()],
        }
        results |= Runner(args).run()
        results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        results["duration_s"] = round(time.monotonic() - started)
        results["targets"] = report.targets(results)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        report.print_table(results)
        log(f"wrote {args.out} in {results['duration_s']} s")


if __name__ == "__main__":
    main()
