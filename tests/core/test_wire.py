"""Decoding Kafka messages: what ingest writes round-trips; anything unfoldable is refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from services.core.events import SCHEMA_HEADER, BuyerEvent, RepAlias, Source, to_message
from services.core.wire import Event, Malformed, decode

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
