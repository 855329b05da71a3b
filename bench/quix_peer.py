"""The Quix Streams peer: the aggregator's rollups as a stream-processing framework computes them.

Runs in bench/.venv (quixstreams pins pydantic below what salesloop uses, so it cannot share the
service virtualenv) and imports nothing from salesloop. Reads the aggregator's topic with its own
consumer group (at-least-once, Quix's default), timestamps every message with `occurred_at`, reduces
tumbling windows per key (state in RocksDB + changelog topics) and upserts the rows with
PostgreSQLSink at every checkpoint (5 s). Days are UTC days, which are the aggregator's local days
here: the benchmark's tenant and reps are in UTC. Variants (spec "variant"):

  same_job         drops redeliveries first: a stateful filter remembers every event_id in Quix state,
                   keyed like the message (tenant:rep), so all deliveries of an event meet in one
                   partition and one key. From that stream, the rep rollup (1-day windows per
                   tenant:rep, the `rollup_rep_daily` counters) and the channel rollup (group_by
                   tenant:channel through a repartition topic, 1-day windows, the
                   `rollup_channel_daily` counters). Windows emit their running totals (`.current()`),
                   so Postgres is as current as the last checkpoint, as the aggregator's rollups are
                   after each batch; the grace is longer than the data (REPLAY_GRACE).
  rep_only         the rep rollup alone, no dedupe, 20-minute grace, a window emitted once when it
                   closes (`.final()`): redeliveries that arrive before it closes are counted twice,
                   events later than the grace are dropped, open windows are never written.
  hourly_rep_only  the reference configuration of the project's first measurements: as rep_only with
                   1-hour windows reduced to (count, duration, amount) per event type, one row per
                   rep, hour and type.

Stops once it has read `expected` messages and the channel rollup has caught up with them, or after
`max_seconds`; `seconds` runs from the first message to `app.run()` returning (final checkpoint and
sink flush included).

    bench/.venv/bin/python bench/quix_peer.py SPEC_JSON_FILE RESULT_JSON_FILE
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.sinks.community.postgresql import PostgreSQLSink
from quixstreams.state import State

VARIANTS = ("same_job", "rep_only", "hourly_rep_only")
# The workload's event times jitter by +-10 minutes around the stream order (bench/workload.py).
GRACE = timedelta(minutes=20)
# The aggregator counts an event of any age. Replaying the backlog, events reach a key much later
# than that (measured: up to 19 hours behind per rep, where a redelivery arrives before its original;
# up to the backlog's 30 days per channel, as the repartition topic is fed partition after partition),
# so the same job needs a grace longer than the data; with `.current()` a long grace delays no
# output, it only keeps windows in state.
REPLAY_GRACE = timedelta(days=365)

REP_COUNTERS = (
    "events calls dials connects talk_time_s talk_calls rep_talk_s buyer_talk_s emails_sent emails_opened "
    "emails_clicked email_replies emails_bounced meetings_booked meetings_held meetings_no_show "
    "leads_created leads_mql leads_sql deals_created deal_stage_changes deals_won deals_lost revenue_won "
    "certifications certifications_passed"
).split()
CHANNEL_COUNTERS = ("events", "leads", "mqls", "sqls", "deals_created", "deals_won", "revenue_won")
REP_ONE = {
    "email.sent": "emails_sent",
    "email.opened": "emails_opened",
    "email.clicked": "emails_clicked",
    "email.replied": "email_replies",
    "email.bounced": "emails_bounced",
    "meeting.booked": "meetings_booked",
    "meeting.held": "meetings_held",
    "meeting.no_show": "meetings_no_show",
    "lead.created": "leads_created",
    "deal.created": "deals_created",
    "deal.stage_changed": "deal_stage_changes",
    "deal.lost": "deals_lost",
}
CHANNEL_ONE = {"lead.created": "leads", "deal.created": "deals_created"}

Row = dict[str, Any]


def add_rep(row: Row, e: Row) -> Row:
    """The rep-rollup definitions of services/aggregator/fold.py, for one event."""
    row["events"] += 1
    t = e["type"]
    if t in REP_ONE:
        row[REP_ONE[t]] += 1
    elif t == "call.completed":
        row["calls"] += 1
        connected = e.get("outcome") == "connected"
        if e.get("direction") == "outbound":
            row["dials"] += 1
            row["connects"] += connected
        if connected and e.get("duration_s") is not None:
            row["talk_time_s"] += e["duration_s"]
        if e.get("rep_talk_s") is not None and e.get("buyer_talk_s") is not None:
            row["talk_calls"] += 1
            row["rep_talk_s"] += e["rep_talk_s"]
            row["buyer_talk_s"] += e["buyer_talk_s"]
    elif t == "lead.qualified":
        if e.get("stage") in ("mql", "sql"):
            row["leads_" + e["stage"]] += 1
    elif t == "deal.won":
        row["deals_won"] += 1
        row["revenue_won"] += float(e.get("amount") or 0)
    elif t == "training.certification":
        row["certifications"] += 1
        row["certifications_passed"] += bool(e.get("passed"))
    return row


def add_channel(row: Row, e: Row) -> Row:
    """The channel-rollup definitions of services/aggregator/fold.py, for one event."""
    row["events"] += 1
    t = e["type"]
    if t in CHANNEL_ONE:
        row[CHANNEL_ONE[t]] += 1
    elif t == "lead.qualified":
        if e.get("stage") in ("mql", "sql"):
            row[e["stage"] + "s"] += 1
    elif t == "deal.won":
        row["deals_won"] += 1
        row["revenue_won"] += float(e.get("amount") or 0)
    return row


def add_by_type(agg: Row, e: Row) -> Row:
    """The reference reduce: [count, duration, amount] per event type."""
    v = agg.setdefault(e["type"], [0, 0, 0.0])
    v[0] += 1
    v[1] += e.get("duration_s") or 0
    v[2] += float(e.get("amount") or 0)
    return agg


def starter(
    keys: tuple[str, ...], counters: tuple[str, ...] | list[str], add: Callable[[Row, Row], Row]
) -> Callable[[Row], Row]:
    """The reduce initializer: a zero row with the window key's columns, plus the first event."""

    def initializer(e: Row) -> Row:
        row: Row = dict.fromkeys(counters, 0)
        row.update((k, e[k]) for k in keys)
        return add(row, e)

    return initializer


def daily_row(window: Row) -> Row:
    row = dict(window["value"])
    row["day"] = datetime.fromtimestamp(window["start"] / 1000, tz=UTC).date()
    row["revenue_won"] = round(row["revenue_won"], 2)
    return row


def hourly_rows(window: Row) -> list[Row]:
    agg = window["value"]
    hour = datetime.fromtimestamp(window["start"] / 1000, tz=UTC)
    return [
        {"tenant": agg["tenant"], "rep_id": agg["rep_id"], "hour": hour, "type": t}
        | {"n": v[0], "duration_s": v[1], "amount": round(v[2], 2)}
        for t, v in agg.items()
        if t not in ("tenant", "rep_id")
    ]


class Progress:
    """Counts messages through the stages; stops the app when done or out of time."""

    def __init__(self, app: Application, expected: int, max_seconds: float) -> None:
        self.app, self.expected, self.max_seconds = app, expected, max_seconds
        self.read = self.passed = self.routed = self.channel = 0
        self.late: dict[str, int] = {}
        self.newest: dict[str, dict[Any, int]] = {}
        self.behind: dict[str, int] = {}
        self.started: float | None = None

    def check(self) -> None:
        if self.started is None:
            self.started = time.perf_counter()
        caught_up = self.read >= self.expected and self.channel >= self.routed
        if caught_up or time.perf_counter() - self.started > self.max_seconds:
            self.app.stop()

    def on_read(self, _: Row) -> None:
        self.read += 1
        self.check()

    def disorder(self, stage: str, key: Any, timestamp: int) -> None:
        """How far behind its key's newest event time an event arrives: what the grace must cover."""
        newest = self.newest.setdefault(stage, {})
        ahead = newest.get(key, timestamp)
        if ahead > timestamp:
            self.behind[stage] = max(self.behind.get(stage, 0), ahead - timestamp)
        else:
            newest[key] = timestamp

    def first_delivery(self, e: Row, key: Any, timestamp: int, headers: Any, state: State) -> bool:
        """Dedupe by event_id: the state is per message key, which all deliveries of an event share."""
        self.read += 1
        new = not state.exists(e["event_id"])
        if new:
            state.set(e["event_id"], 1)
            self.passed += 1
            self.routed += e.get("channel") is not None
            self.disorder("rep", key, timestamp)
        self.check()
        return new

    def on_channel(self, _: Row, key: Any, timestamp: int, headers: Any) -> None:
        self.channel += 1
        self.disorder("channel", key, timestamp)
        self.check()

    def on_late(self, rollup: str) -> Callable[..., bool]:
        def count(*_: Any, **__: Any) -> bool:
            self.late[rollup] = self.late.get(rollup, 0) + 1
            return False  # counted, not logged

        return count

    def done(self) -> int:
        """Messages whose every stage has run: those read, less what still waits in the repartition topic."""
        return self.read - (self.routed - self.channel)


def sink(pg: Row, table: str, key: list[str]) -> PostgreSQLSink:
    return PostgreSQLSink(
        host=pg["host"],
        port=pg["port"],
        dbname=pg["dbname"],
        user=pg["user"],
        password="",
        table_name=table,
        primary_key_columns=key,
        upsert_on_primary_key=True,
        include_metadata=False,
    )


def build(sdf: StreamingDataFrame, spec: Row, progress: Progress) -> None:
    variant, pg, tables = spec["variant"], spec["postgres"], spec["tables"]
    day, rep_key, channel_key = timedelta(days=1), ("tenant", "rep_id"), ("tenant", "channel")
    if variant == "hourly_rep_only":
        sdf = sdf.update(progress.on_read)
        hourly = sdf.tumbling_window(timedelta(hours=1), grace_ms=GRACE, on_late=progress.on_late("rep"))
        hourly = hourly.reduce(add_by_type, starter(rep_key, [], add_by_type))
        hourly = hourly.final().apply(hourly_rows, expand=True)
        hourly.sink(sink(pg, tables["rep"], [*rep_key, "hour", "type"]))
    elif variant == "rep_only":
        sdf = sdf.update(progress.on_read)
        rep = sdf.tumbling_window(day, grace_ms=GRACE, on_late=progress.on_late("rep"))
        rep = rep.reduce(add_rep, starter(rep_key, REP_COUNTERS, add_rep))
        rep.final().apply(daily_row).sink(sink(pg, tables["rep"], [*rep_key, "day"]))
    else:
        sdf = sdf.filter(progress.first_delivery, stateful=True, metadata=True)
        # As in the aggregator's fold, an event without a channel (rep) is left out of that rollup.
        by_channel = sdf.filter(lambda e: e.get("channel") is not None)
        by_channel = by_channel.group_by(lambda e: f"{e['tenant']}:{e['channel']}", name="channel")
        by_channel = by_channel.update(progress.on_channel, metadata=True)
        by_rep = sdf.filter(lambda e: e.get("rep_id") is not None)
        for rollup, stream, key, counters, add in (
            ("rep", by_rep, rep_key, REP_COUNTERS, add_rep),
            ("channel", by_channel, channel_key, CHANNEL_COUNTERS, add_channel),
        ):
            window = stream.tumbling_window(day, grace_ms=REPLAY_GRACE, on_late=progress.on_late(rollup))
            window = window.reduce(add, starter(key, counters, add))
            window.current().apply(daily_row).sink(sink(pg, tables[rollup], [*key, "day"]))


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    if spec["variant"] not in VARIANTS:
        raise SystemExit(f"variant must be one of {VARIANTS}")
    app = Application(
        broker_address=spec["bootstrap"],
        consumer_group=spec["group"],
        auto_offset_reset="earliest",
        commit_interval=5.0,
        state_dir=spec["state_dir"],
        loglevel="ERROR",
        # Tansu answers a new member's JoinGroup after about half the session timeout: librdkafka's
        # 45 s default costs 23 s of start-up (before the clock starts); 10 s is aiokafka's default.
        consumer_extra_config={"session.timeout.ms": 10_000},
    )

    def occurred_ms(value: Row, headers: Any, timestamp: int, timestamp_type: Any) -> int:
        return int(datetime.fromisoformat(value["occurred_at"]).timestamp() * 1000)

    topic = app.topic(
        spec["topic"], value_deserializer="json", key_deserializer="str", timestamp_extractor=occurred_ms
    )
    progress = Progress(app, int(spec["expected"]), float(spec["max_seconds"]))
    build(app.dataframe(topic), spec, progress)
    app.run()
    elapsed = time.perf_counter() - progress.started if progress.started is not None else 0.0
    result = {
        "messages": progress.done(),
        "read": progress.read,
        "distinct": progress.passed,
        "channel_stage": progress.channel,
        "late_dropped": progress.late,
        "max_behind_s": {stage: ms // 1000 for stage, ms in progress.behind.items()},
        "seconds": elapsed,
    }
    with open(sys.argv[2], "w") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
