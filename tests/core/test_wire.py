"""Decoding Kafka messages: what ingest writes round-trips; anything unfoldable is refused with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from services.core.events import (
    SCHEMA_HEADER,
    BuyerEvent,
    Channel,
    CheckedEvent,
    EventType,
    RepAlias,
    Source,
    to_message,
)
from services.core.wire import Event, Malformed, Problem, check_event, decode

HEADERS = [SCHEMA_HEADER]
BASE: dict[str, Any] = {
    "event_id": "evt-1",
    "type": "deal.won",
    "occurred_at": "2026-11-02T12:00:00+01:00",
    "tenant": "acme",
    "source": "hubspot",
    "received_at": "2026-11-02T11:00:05Z",
}


def message(**changes: Any) -> bytes:
    body = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


def test_a_message_written_by_ingest_decodes_to_the_event() -> None:
    event = BuyerEvent(
        event_id="call-9",
        type="call.completed",
        occurred_at=datetime(2026, 11, 2, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
        rep_id="r1",
        contact_id="c1",
        channel="outbound",
        direction="outbound",
        outcome="connected",
        duration_s=61.5,
        rep_talk_s=30,
        buyer_talk_s=31.5,
        amount=Decimal("12.3400"),
        attributes={"note": "x"},
    )
    received = datetime(2026, 11, 2, 14, 31, tzinfo=UTC)
    value = to_message(event, "acme", Source.TWILIO, received, RepAlias(kind="phone", value="+4930123"))
    decoded = decode(value, HEADERS)
    assert isinstance(decoded, Event)
    assert decoded.key == ("acme", "call-9")
    assert decoded.occurred_at == datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    assert decoded.received_at == received
    assert (decoded.duration_ms, decoded.rep_talk_ms, decoded.buyer_talk_ms) == (61_500, 30_000, 31_500)
    assert decoded.amount == Decimal("12.34")
    assert (decoded.source, decoded.channel, decoded.rep_alias) == (
        "twilio",
        "outbound",
        ("phone", "+4930123"),
    )
    assert orjson.loads(decoded.payload) == orjson.loads(value)


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (message(), [], "schema_header"),
        (message(), [("schema", b"buyer-event/2")], "schema_header"),
        (b"{not json", HEADERS, "invalid_json"),
        (b"", HEADERS, "invalid_json"),
        (b"[1, 2]", HEADERS, "invalid_json"),
        (b'{"event_id": "\\ud800"}', HEADERS, "invalid_json"),
        (message(event_id=None), HEADERS, "missing_field"),
        (message(tenant=None), HEADERS, "missing_field"),
        (message(occurred_at=None), HEADERS, "missing_field"),
        (message(received_at=None), HEADERS, "missing_field"),
        (message(type=None), HEADERS, "missing_field"),
        (message(type="deal.exploded"), HEADERS, "invalid_field"),
        (message(type=["deal.won"]), HEADERS, "invalid_field"),
        (message(event_id="x" * 201), HEADERS, "invalid_field"),
        (message(event_id=""), HEADERS, "invalid_field"),
        (message(event_id="a\x00b"), HEADERS, "invalid_field"),
        (message(tenant=7), HEADERS, "invalid_field"),
        (message(occurred_at="2026-11-02T12:00:00"), HEADERS, "invalid_field"),
        (message(occurred_at="yesterday"), HEADERS, "invalid_field"),
        (message(occurred_at="0001-01-01T00:00:00Z"), HEADERS, "invalid_field"),
        (message(source="fax"), HEADERS, "invalid_field"),
        (message(channel="tv"), HEADERS, "invalid_field"),
        (message(duration_s=-1), HEADERS, "invalid_field"),
        (message(duration_s="60"), HEADERS, "invalid_field"),
        (message(duration_s=True), HEADERS, "invalid_field"),
        (message(amount="lots"), HEADERS, "invalid_field"),
        (message(amount="-5"), HEADERS, "invalid_field"),
        (message(amount="1e16"), HEADERS, "invalid_field"),
        (message(amount="NaN"), HEADERS, "invalid_field"),
        (message(passed="yes"), HEADERS, "invalid_field"),
        (message(rep_alias={"kind": "fax", "value": "1"}), HEADERS, "invalid_field"),
        (message(rep_alias={"kind": ["phone"], "value": "1"}), HEADERS, "invalid_field"),
        (message(rep_alias={"kind": "phone", "value": "1" * 321}), HEADERS, "invalid_field"),
        (message(channel={"x": 1}), HEADERS, "invalid_field"),
    ],
)
def test_unfoldable_messages_are_refused_with_a_reason(
    value: bytes, headers: list[tuple[str, bytes]], reason: str
) -> None:
    decoded = decode(value, headers)
    assert isinstance(decoded, Malformed)
    assert decoded.reason == reason


def test_a_refusal_names_the_tenant_and_event_when_known() -> None:
    decoded = decode(message(type="deal.exploded"), HEADERS)
    assert decoded == Malformed("invalid_field", decoded.detail, "acme", "evt-1")
    assert "type" in decoded.detail


def test_amounts_are_exact_decimals_with_at_most_four_places() -> None:
    cases = {"0.1": Decimal("0.1"), 3: Decimal(3), 0.1: Decimal("0.1"), "1.000049": Decimal("1.0000")}
    for raw, want in cases.items():
        decoded = decode(message(amount=raw), HEADERS)
        assert isinstance(decoded, Event)
        assert decoded.amount == want


def test_nul_characters_are_kept_out_of_the_archive_payload() -> None:
    decoded = decode(message(attributes={"note": "a\x00b"}), HEADERS)
    assert isinstance(decoded, Event)
    assert "\\u0000" not in decoded.payload
    assert orjson.loads(decoded.payload)["attributes"] == {"note": "a\ufffdb"}


def test_v2_fields_are_decoded_into_their_slots() -> None:
    decoded = decode(
        message(
            type="deal.updated",
            account_id="acct-1",
            deal_id="d-1",
            close_date="2026-12-31",
            forecast_category="commit",
            mrr="99.5",
            currency="USD",
        ),
        HEADERS,
    )
    assert isinstance(decoded, Event)
    assert (decoded.account_id, decoded.close_date, decoded.forecast_category) == (
        "acct-1",
        date(2026, 12, 31),
        "commit",
    )
    assert (decoded.mrr, decoded.currency) == (Decimal("99.5"), "USD")
    transcribed = decode(
        message(
            type="call.transcribed",
            call_event_id="call-9",
            transcript=[{"speaker": "rep", "start_s": 0, "end_s": 2.5, "text": "hello"}],
        ),
        HEADERS,
    )
    assert isinstance(transcribed, Event)
    assert transcribed.call_event_id == "call-9"


def test_types_sources_and_channels_are_enum_members() -> None:
    decoded = decode(message(type="call.completed", source="twilio", channel="referral"), HEADERS)
    assert isinstance(decoded, Event)
    assert decoded.type is EventType.CALL_COMPLETED
    assert decoded.source is Source.TWILIO
    assert decoded.channel is Channel.REFERRAL


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"close_date": "2026-13-01"}, "close_date"),
        ({"close_date": "2026-12-31T00:00:00"}, "close_date"),
        ({"forecast_category": "maybe"}, "forecast_category"),
        ({"mrr": "-1"}, "mrr"),
        ({"call_event_id": ""}, "call_event_id"),
        ({"account_id": 7}, "account_id"),
        ({"currency": "usd"}, "currency"),
        ({"direction": "sideways"}, "direction"),
        (
            {"transcript": [{"speaker": "narrator", "start_s": 0, "end_s": 1, "text": ""}]},
            "transcript.0.speaker",
        ),
        ({"transcript": [{"speaker": "rep", "start_s": 0, "text": ""}]}, "transcript.0.end_s"),
        ({"transcript": {"speaker": "rep"}}, "transcript"),
        ({"attributes": [1]}, "attributes"),
    ],
)
def test_bad_v2_and_other_optional_fields_are_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    decoded = decode(message(**changes), HEADERS)
    assert isinstance(decoded, Malformed)
    assert decoded.reason == "invalid_field"
    assert decoded.detail.startswith(f"{field} ")


def test_the_aggregator_folds_what_only_a_producer_is_held_to() -> None:
    """Type rules, exact amounts, NUL in free text and rep ids a URL could not carry back are checked
    at ingest; the archive can hold them (and holds such rep ids from before the rule)."""
    for changes in (
        {"type": "subscription.started"},
        {"type": "lead.qualified", "stage": "hot"},
        {"amount": "1.000049"},
        {"transcript": [{"speaker": "rep", "start_s": 0, "end_s": 1, "text": "a\x00b"}]},
        {"rep_id": "east/ada"},
        {"rep_id": ".."},
        {"rep_id": "ada\x1b[31m"},
    ):
        assert isinstance(decode(message(**changes), HEADERS), Event), changes


CLIENT: dict[str, Any] = {"event_id": "e-1", "type": "deal.won", "occurred_at": "2026-11-02T12:00:00+01:00"}
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_a_client_event_is_checked_and_sent_as_given_with_amounts_as_decimal_strings() -> None:
    checked = check_event(
        {**CLIENT, "rep_id": "r1", "amount": 1200.5, "mrr": 3, "duration_s": 60, "stage": None},
        now=NOW,
        currency="USD",
    )
    assert isinstance(checked, CheckedEvent)
    assert (checked.rep_id, checked.contact_id) == ("r1", None)
    assert checked.body == {**CLIENT, "rep_id": "r1", "amount": "1200.5", "mrr": "3", "duration_s": 60}
    decoded = decode(to_message(checked, "acme", Source.API, NOW), HEADERS)
    assert isinstance(decoded, Event)
    assert (decoded.amount, decoded.duration_ms, decoded.source) == (Decimal("1200.5"), 60_000, Source.API)


def test_every_bad_field_of_a_client_event_is_reported() -> None:
    problems = check_event(
        {
            **CLIENT,
            "event_id": "",
            "occurred_at": "2026-11-04T12:00:00Z",
            "amount": "1.00001",
            "currency": "EUR",
            "tenant": "other",
            "colour": "blue",
        },
        now=NOW,
        currency="USD",
    )
    assert isinstance(problems, list)
    assert {p.field: p.reason for p in problems} == {
        "event_id": "must be a string of 1-200 characters without NUL",
        "occurred_at": "must not be more than 24 hours in the future",
        "amount": "must have at most 4 decimal places",
        "currency": "must be the tenant's reporting currency USD",
        "tenant": "is set by the service and must not be sent",
        "colour": "is not a field of the event",
    }
    assert check_event({"type": "lead.qualified"}, now=NOW, currency="USD") == [
        Problem("event_id", "is required"),
        Problem("occurred_at", "is required"),
    ]
    assert check_event({**CLIENT, "type": "subscription.changed"}, now=NOW, currency="USD") == [
        Problem("account_id", "is required for subscription.changed"),
        Problem("mrr", "is required for subscription.changed"),
    ]
    assert check_event([CLIENT], now=NOW, currency="USD") == [
        Problem(None, "must be a JSON object: one BuyerEvent")
    ]
