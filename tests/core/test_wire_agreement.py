"""The pydantic models and the wire decoder agree on every event: one accepts exactly what the other does.

Events are drawn field by field from valid values and from the near misses clients and adapters get
wrong (numbers as strings, timestamps without offsets or in the year 1800, amounts with five decimal
places, NUL characters, unknown fields...). For each, `BuyerEvent` (what adapters build, what documents
the schema) and `check_event` (what POST /v1/events runs) must agree on whether it is valid and on which
fields are bad; and when valid, the aggregator must decode what either of them sends to the same values.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.core import limits
from services.core.events import (
    SCHEMA_HEADER,
    BuyerEvent,
    Channel,
    CheckedEvent,
    EventType,
    Source,
    to_message,
)
from services.core.wire import Event, check_event, decode

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CURRENCY = "USD"
SLOTS = [name for name in Event.__slots__ if name not in ("payload", "tenant", "received_at", "source")]


@dataclass(frozen=True)
class Values:
    """A field's valid values and its near misses."""

    valid: st.SearchStrategy[Any]
    near_misses: st.SearchStrategy[Any]

    def mix(self, one_in: int = 10) -> st.SearchStrategy[Any]:
        """Valid values but for one in `one_in`: then whole events of several fields are often valid."""
        return st.integers(1, one_in).flatmap(lambda n: self.near_misses if n == 1 else self.valid)


junk = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.just([]), st.just({}), st.just("x"))
ids = Values(
    st.text(string.ascii_letters + string.digits + "-:._", min_size=1, max_size=12),
    st.one_of(st.just(""), st.just("e" * 200), st.just("e" * 201), st.just("r\x001"), st.just("ü" * 3), junk),
)
# A rep id is an id a URL path segment carries back as written.
rep_ids = Values(
    ids.valid.filter(lambda v: v not in (".", "..")),
    st.one_of(ids.near_misses, st.sampled_from(["east/ada", ".", "..", "r\x1b1", "r\n", "r\x85", "r\x7f"])),
)
offsets = st.sampled_from([0, 2, -5, 5.75, 13.75, -9.5]).map(lambda h: timezone(timedelta(hours=h)))
moments = st.datetimes(datetime(1890, 1, 1), datetime(9010, 1, 1), timezones=offsets)  # noqa: DTZ001
timestamps = Values(
    st.datetimes(datetime(2020, 1, 1), datetime(2026, 11, 3), timezones=offsets).map(  # noqa: DTZ001
        datetime.isoformat
    ),
    st.one_of(
        moments.map(datetime.isoformat),
        moments.map(lambda m: m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        moments.map(lambda m: m.replace(tzinfo=None).isoformat()),
        st.sampled_from(
            [
                "2026-10-05T10:00:00",
                "2026-10-05",
                "yesterday",
                "0001-01-01T00:00:00Z",
                "1899-12-31T23:00:00Z",
                "1900-01-01T00:00:00+01:00",
                "2026-11-03T12:00:00Z",
                "2026-11-03T12:00:01Z",
                "20261005T100000Z",
                "2026-10-05 10:00:00+0200",
            ]
        ),
        st.integers(0, 2_000_000_000),
        junk,
    ),
)
seconds = Values(
    st.one_of(st.integers(0, 100_000), st.floats(0, 100_000, allow_nan=False, allow_infinity=False)),
    st.one_of(
        st.sampled_from([-1, -0.5, limits.MAX_SECONDS, limits.MAX_SECONDS + 1, 1e300, "60", "1.5", True]),
        junk,
    ),
)
money = Values(
    st.one_of(
        st.decimals(0, 10**9, places=4, allow_nan=False, allow_infinity=False).map(str),
        st.integers(0, 10**9),
        st.sampled_from([0.1, 1200.5, 99.99]),
    ),
    st.one_of(
        st.decimals(0, 10**9, places=6, allow_nan=False, allow_infinity=False).map(str),
        st.sampled_from(
            [
                "-5",
                "1e15",
                "1e16",
                "1E+3",
                "NaN",
                "Infinity",
                "1.50000",
                " 5 ",
                "1_000",
                "lots",
                -1,
                1e300,
                True,
            ]
        ),
        st.floats(0, 100, allow_nan=False, allow_infinity=False),
        junk,
    ),
)
scores = Values(
    st.one_of(st.integers(0, 100), st.floats(0, 100, allow_nan=False, allow_infinity=False)),
    st.one_of(st.sampled_from([-1, 101, 100.5, "5", True]), junk),
)
flags = Values(st.booleans(), st.one_of(st.sampled_from([0, 1, "yes", "true", "on"]), junk))
dates = Values(
    st.dates(date(1990, 1, 1), date(2100, 1, 1)).map(date.isoformat),
    st.one_of(
        st.sampled_from(
            ["2026-1-1", "20260101", "2026-01-01T00:00:00", "1899-12-31", "0001-01-01", "2026-02-30"]
        ),
        st.integers(0, 2_000_000_000),
        junk,
    ),
)


def choices(values: list[str]) -> Values:
    return Values(st.sampled_from(values), st.one_of(st.sampled_from(["tv", "", "Inbound"]), junk))


segments = st.fixed_dictionaries(
    {
        "speaker": choices(["rep", "buyer"]).mix(),
        "start_s": seconds.mix(),
        "end_s": seconds.mix(),
        "text": Values(st.text(max_size=20), st.one_of(st.just("a\x00b"), junk)).mix(),
    },
    optional={"colour": st.just("blue")},
)
SEGMENT = {"speaker": "rep", "start_s": 0, "end_s": 1.5, "text": "hi"}
transcripts = Values(
    st.lists(segments, max_size=3),
    st.one_of(
        st.sampled_from([[{"speaker": "rep"}], [SEGMENT] * limits.MAX_TRANSCRIPT_SEGMENTS]),
        st.just([SEGMENT] * (limits.MAX_TRANSCRIPT_SEGMENTS + 1)),
        junk,
    ),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


def nested(levels: int) -> Any:
    node: Any = 1
    for _ in range(levels):
        node = {"a": node}
    return node


attributes = Values(
    st.dictionaries(st.text(max_size=5), json_values, max_size=4),
    st.one_of(
        st.sampled_from(
            [{"k\x00": 1}, {"a": "b\x00"}, nested(32), nested(33), {"x": "y" * 16 * 1024}, [1, 2], "notes"]
        ),
        junk,
    ),
)

FIELDS: dict[str, Values] = {
    "rep_id": rep_ids,
    "contact_id": ids,
    "account_id": ids,
    "deal_id": ids,
    "channel": choices([c.value for c in Channel]),
    "direction": choices(["inbound", "outbound"]),
    "outcome": choices(["connected", "no_answer", "voicemail", "busy", "failed"]),
    "duration_s": seconds,
    "rep_talk_s": seconds,
    "buyer_talk_s": seconds,
    "amount": money,
    "currency": Values(st.just(CURRENCY), st.sampled_from(["EUR", "usd", "US", "USDD", "ÜSD", "US1", 840])),
    "stage": Values(st.sampled_from(["mql", "sql", "proposal"]), st.one_of(st.just("s" * 101), junk)),
    "module": ids,
    "score": scores,
    "passed": flags,
    "call_event_id": ids,
    "close_date": dates,
    "forecast_category": choices(["pipeline", "best_case", "commit", "closed", "omitted"]),
    "mrr": money,
    "transcript": transcripts,
    "attributes": attributes,
}
# Not BuyerEvent fields: service-set, or unknown.
STRANGERS = {"tenant": "acme", "received_at": "2026-11-02T12:00:00Z", "colour": "blue"}
TYPES = choices([t.value for t in EventType])


@st.composite
def client_events(draw: st.DrawFn) -> dict[str, Any]:
    """Events of a few fields, each mostly valid."""
    event: dict[str, Any] = {}
    for name, values in (("event_id", ids), ("type", TYPES), ("occurred_at", timestamps)):
        if draw(st.integers(0, 20)):  # rarely missing
            event[name] = draw(values.mix())
    for name in sorted(draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=8))):
        event[name] = draw(FIELDS[name].mix())
    if draw(st.integers(0, 15)) == 0:
        name = draw(st.sampled_from(sorted(STRANGERS)))
        event[name] = STRANGERS[name]
    return event


@st.composite
def one_field_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event but for one field, as often a near miss as not."""
    event = {"event_id": "e", "type": draw(TYPES.valid), "occurred_at": draw(timestamps.valid)}
    name = draw(st.sampled_from(["event_id", "type", "occurred_at", *sorted(FIELDS)]))
    values = {"event_id": ids, "type": TYPES, "occurred_at": timestamps, **FIELDS}[name]
    event[name] = draw(values.mix(one_in=2))
    return event


def model_verdict(obj: dict[str, Any]) -> BuyerEvent | set[str]:
    try:
        return BuyerEvent.model_validate(obj, context={"now": NOW, "currency": CURRENCY})
    except ValidationError as exc:
        return {field for err in exc.errors() for field in _model_fields(err)}


def _model_fields(err: Any) -> list[str]:
    if err["loc"]:
        return [str(err["loc"][0])]
    # The rules of a type: "stage must be ...; module is required ..." name their fields first.
    rules = str(err["msg"]).removeprefix("Value error, ").split("; ")
    return [rule.split(" ", 1)[0] for rule in rules]


def decoder_verdict(obj: dict[str, Any]) -> CheckedEvent | set[str]:
    checked = check_event(obj, now=NOW, currency=CURRENCY)
    if isinstance(checked, CheckedEvent):
        return checked
    return {(p.field or "").split(".", 1)[0] for p in checked}


def folded(event: BuyerEvent | CheckedEvent) -> Event:
    """What the aggregator decodes from the message ingest sends for `event`."""
    decoded = decode(to_message(event, "acme", Source.API, NOW), [SCHEMA_HEADER])
    assert isinstance(decoded, Event), decoded
    return decoded


def same_values(model: BuyerEvent, event: Event) -> None:
    """The decoded event holds the model's values, for every field both know."""
    assert (event.event_id, event.type, event.occurred_at) == (model.event_id, model.type, model.occurred_at)
    assert event.occurred_at.utcoffset() == model.occurred_at.utcoffset()
    for name in ("rep_id", "contact_id", "account_id", "deal_id", "channel", "direction", "outcome"):
        assert getattr(event, name) == getattr(model, name), name
    for name in ("stage", "module", "passed", "call_event_id", "close_date", "forecast_category", "currency"):
        assert getattr(event, name) == getattr(model, name), name
    for name in ("duration", "rep_talk", "buyer_talk"):
        given_s = getattr(model, f"{name}_s")
        assert getattr(event, f"{name}_ms") == (None if given_s is None else round(given_s * 1000)), name
    assert (event.amount, event.mrr) == (model.amount, model.mrr)
    assert event.score == (None if model.score is None else Decimal(repr(model.score)))
    payload = orjson.loads(event.payload)
    transcript = None if model.transcript is None else [s.model_dump() for s in model.transcript]
    assert (payload.get("transcript"), payload.get("attributes")) == (transcript, model.attributes)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(client_events())
@example({"event_id": "e", "type": "call.completed", "occurred_at": "1800-01-01T00:00:00Z"})
@example(
    {"event_id": "e", "type": "call.completed", "occurred_at": "2026-10-05T10:00:00Z", "duration_s": "60"}
)
@example({"event_id": "e", "type": "deal.won", "occurred_at": "2026-10-05T10:00:00Z", "amount": "1.50000"})
@example({"event_id": "e", "type": "lead.qualified", "occurred_at": "2026-10-05T10:00:00Z", "stage": "sql"})
def test_the_model_and_the_decoder_accept_the_same_events_with_the_same_values(obj: dict[str, Any]) -> None:
    agree(obj)


@settings(max_examples=600, deadline=None)
@given(one_field_events())
def test_they_agree_on_each_field_and_its_near_misses(obj: dict[str, Any]) -> None:
    agree(obj)


def agree(obj: dict[str, Any]) -> None:
    model, checked = model_verdict(obj), decoder_verdict(obj)
    if isinstance(model, set) or isinstance(checked, set):
        assert model == checked, obj
        return
    assert isinstance(model, BuyerEvent)
    decoded = folded(checked)
    same_values(model, decoded)
    # The vendor path: an adapter's BuyerEvent, dumped by to_message, folds to the very same event.
    from_model = folded(model)
    assert [getattr(from_model, s) for s in SLOTS] == [getattr(decoded, s) for s in SLOTS]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"occurred_at": "1800-06-01T00:00:00Z"}, "occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at"),
        ({"occurred_at": 1_780_000_000}, "occurred_at"),
        ({"duration_s": "60"}, "duration_s"),
        ({"passed": "yes"}, "passed"),
        ({"close_date": "2026-01-01T00:00:00"}, "close_date"),
        ({"rep_id": "r\x001"}, "rep_id"),
        ({"type": "subscription.started", "account_id": "a1"}, "mrr"),
        ({"type": "call.transcribed", "transcript": []}, "call_event_id"),
    ],
)
def test_what_the_aggregator_would_refuse_ingest_refuses_too(changes: dict[str, Any], field: str) -> None:
    obj = {"event_id": "e", "type": "call.completed", "occurred_at": "2026-10-05T10:00:00Z", **changes}
    assert decoder_verdict(obj) == model_verdict(obj) == {field}


@pytest.mark.parametrize("rep_id", ["east/ada", ".", "..", "r\t1", "r\x1b[31m", "r\x85"])
def test_a_rep_id_a_url_could_not_carry_back_is_refused_by_both(rep_id: str) -> None:
    obj = {"event_id": "e", "type": "call.completed", "occurred_at": "2026-10-05T10:00:00Z", "rep_id": rep_id}
    assert decoder_verdict(obj) == model_verdict(obj) == {"rep_id"}
