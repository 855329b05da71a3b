"""The Quix Streams peer: the per-rep daily rollup as a stream-processing framework does it.

Runs in bench/.venv (quixstreams pins pydantic below what salesloop uses, so it cannot share the
service virtualenv) and imports nothing from salesloop. Reads the same topic with its own consumer
group: a one-day tumbling window on `occurred_at` per message key (tenant:rep), reduced to the same
counters as `rollup_rep_daily`, emitted when the window closes and upserted by PostgreSQLSink. It
does not dedupe and writes no channel rollup, archive or offsets table: the comparison flatters it.

    bench/.venv/bin/python bench/quix_peer.py SPEC_JSON_FILE RESULT_JSON_FILE
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from quixstreams import Application
from quixstreams.sinks.community.postgresql import PostgreSQLSink

COUNTERS = (
    "events calls dials connects talk_time_s talk_calls rep_talk_s buyer_talk_s emails_sent emails_opened "
    "emails_clicked email_replies emails_bounced meetings_booked meetings_held meetings_no_show "
    "leads_created leads_mql leads_sql deals_created deal_stage_changes deals_won deals_lost revenue_won "
    "certifications certifications_passed"
).split()
ONE = {
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


def add(row: dict[str, Any], e: dict[str, Any]) -> dict[str, Any]:
    """The rep-rollup definitions of services/aggregator/fold.py, for one event."""
    row["events"] += 1
    t = e["type"]
    if t in ONE:
        row[ONE[t]] += 1
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


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    expected, max_seconds = int(spec["expected"]), float(spec["max_seconds"])
    app = Application(
        broker_address=spec["bootstrap"],
        consumer_group=spec["group"],
        auto_offset_reset="earliest",
        commit_interval=5.0,
        state_dir=spec["state_dir"],
        loglevel="ERROR",
    )

    def occurred_ms(value: dict[str, Any], headers: Any, timestamp: int, timestamp_type: Any) -> int:
        return int(datetime.fromisoformat(value["occurred_at"]).timestamp() * 1000)

    topic = app.topic(
        spec["topic"], value_deserializer="json", key_deserializer="str", timestamp_extractor=occurred_ms
    )
    progress: dict[str, Any] = {"n": 0, "t0": None}

    def count(_: dict[str, Any]) -> None:
        if progress["t0"] is None:
            progress["t0"] = time.perf_counter()
        progress["n"] += 1
        if progress["n"] >= expected or time.perf_counter() - progress["t0"] > max_seconds:
            app.stop()

    def initializer(e: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
        row["tenant"], row["rep_id"] = e["tenant"], e["rep_id"]
        return add(row, e)

    def to_row(window: dict[str, Any]) -> dict[str, Any]:
        row = dict(window["value"])
        row["day"] = datetime.fromtimestamp(window["start"] / 1000, tz=UTC).date()
        row["revenue_won"] = round(row["revenue_won"], 2)
        return row

    sdf = app.dataframe(topic).update(count)
    sdf = sdf.tumbling_window(timedelta(days=1), grace_ms=timedelta(minutes=20)).reduce(add, initializer)
    sdf = sdf.final().apply(to_row)
    pg = spec["postgres"]
    sdf.sink(
        PostgreSQLSink(
            host=pg["host"],
            port=pg["port"],
            dbname=pg["dbname"],
            user=pg["user"],
            password="",
            table_name=spec["table"],
            primary_key_columns=["tenant", "rep_id", "day"],
            upsert_on_primary_key=True,
            include_metadata=False,
        )
    )
    app.run()
    elapsed = time.perf_counter() - progress["t0"] if progress["t0"] is not None else 0.0
    with open(sys.argv[2], "w") as out:
        json.dump({"events": progress["n"], "seconds": elapsed}, out)


if __name__ == "__main__":
    main()
