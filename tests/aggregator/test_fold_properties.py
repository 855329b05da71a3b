"""However a stream is redelivered, reordered and cut into batches, the rollups come out the same."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.fold import Deltas, distinct, fold
from services.core.events import SCHEMA_HEADER, Channel, EventType
from services.core.wire import Event, decode

ZONES = {
    ("acme", None): "Europe/Berlin",
    ("acme", "r1"): "America/New_York",
    ("acme", "r2"): "Asia/Kolkata",
    ("globex", None): "Pacific/Chatham",
}


def zone_of(tenant: str, rep_id: str | None) -> ZoneInfo:
    return ZoneInfo(ZONES.get((tenant, rep_id), ZONES[(tenant, None)]))


seconds = st.one_of(
    st.none(),
    st.integers(0, 10_000),
    st.floats(0, 10_000, allow_nan=False, allow_infinity=False),
)
amounts = st.one_of(
    st.none(),
    st.decimals(0, 10**12, places=4, allow_nan=False, allow_infinity=False).map(str),
)
# Around the 2026 DST changes, with offsets that put the same instant on different calendar days.
instants = st.datetimes(
    datetime(2026, 3, 1),  # noqa: DTZ001 (hypothesis takes naive bounds and adds `timezones`)
    datetime(2026, 11, 30),  # noqa: DTZ001
    timezones=st.just(UTC),
)
offsets = st.sampled_from([0, -5, 5.75, 13.75, -9.5]).map(lambda h: timedelta(hours=h))


@st.composite
def stored_event(draw: st.DrawFn, index: int) -> dict[str, Any]:
    written = draw(instants).astimezone(timezone(draw(offsets)))
    body: dict[str, Any] = {
        "event_id": f"e{index}",
        "tenant": draw(st.sampled_from(["acme", "globex"])),
        "type": draw(st.sampled_from([t.value for t in EventType])),
        "occurred_at": written.isoformat(),
        "received_at": "2026-12-01T00:00:00Z",
        "source": "api",
        "rep_id": draw(st.sampled_from([None, "r1", "r2", "r3"])),
        "channel": draw(st.one_of(st.none(), st.sampled_from([c.value for c in Channel]))),
        "direction": draw(st.sampled_from([None, "inbound", "outbound"])),
        "outcome": draw(st.sampled_from([None, "connected", "no_answer"])),
        "duration_s": draw(seconds),
        "rep_talk_s": draw(seconds),
        "buyer_talk_s": draw(seconds),
        "amount": draw(amounts),
        "stage": draw(st.sampled_from([None, "mql", "sql", "proposal"])),
        "passed": draw(st.sampled_from([None, True, False])),
    }
    return {k: v for k, v in body.items() if v is not None}


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[bytes], list[list[bytes]]]:
    """(the distinct messages, the same messages redelivered, shuffled and cut into batches)."""
    n = draw(st.integers(1, 40))
    messages = [orjson.dumps(draw(stored_event(i))) for i in range(n)]
    copies = draw(st.lists(st.sampled_from(messages), max_size=2 * n))
    stream = draw(st.permutations(messages + copies))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    bounds = [0, *cuts, len(stream)]
    return messages, [stream[a:b] for a, b in itertools.pairwise(bounds)]


def decoded(messages: list[bytes]) -> list[Event]:
    out = [decode(m, [SCHEMA_HEADER]) for m in messages]
    assert all(isinstance(e, Event) for e in out)
    return out  # type: ignore[return-value]


@settings(max_examples=150, deadline=None)
@given(deliveries())
def test_rollups_do_not_depend_on_redelivery_order_or_batching(
    case: tuple[list[bytes], list[list[bytes]]],
) -> None:
    messages, batches = case
    once = fold(decoded(messages), zone_of)

    archive: set[tuple[str, str]] = set()  # what the events table's primary key does
    total = Deltas()
    for batch in batches:
        new = [e for e in distinct(decoded(batch)) if e.key not in archive]
        archive.update(e.key for e in new)
        total.merge(fold(new, zone_of))

    assert total.rep_rows() == once.rep_rows()
    assert total.channel_rows() == once.channel_rows()
    assert total.watermark_rows() == once.watermark_rows()
    assert total.events == len(messages)
