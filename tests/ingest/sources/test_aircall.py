from __future__ import annotations

import orjson
import pytest

from services.core.events import RepAlias
from services.ingest.sources import aircall
from services.ingest.sources.common import InboundRequest, PayloadError, SignatureError
from tests.ingest.sources.support import CTX, NOW, body, mapped, maps

TOKEN = "45XXYYZZa08"
URL = "https://hooks.salesloop.example/webhooks/aircall/acme"


def request(payload: bytes) -> InboundRequest:
    return InboundRequest("POST", URL, {"Content-Type": "application/json"}, payload, NOW)


def test_token_matches() -> None:
    aircall.verify(request(body("aircall_call_ended.json")), TOKEN)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (body("aircall_call_ended.json").replace(b'"45XXYYZZa08"', b'"45XXYYZZa09"'), "does not match"),
        (body("aircall_call_ended.json").replace(b'"45XXYYZZa08"', b'"45XXYYZZa08 "'), "does not match"),
        (body("aircall_call_ended.json").replace(b'"token": "45XXYYZZa08",', b""), "missing token"),
        (body("aircall_call_ended.json").replace(b'"45XXYYZZa08"', b"12345"), "missing token"),
        (b"[]", "missing token"),
    ],
    ids=["wrong-token", "padded-token", "no-token", "numeric-token", "not-an-object"],
)
def test_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        aircall.verify(request(payload), TOKEN)


def test_wrong_tenant_token_is_refused() -> None:
    with pytest.raises(SignatureError):
        aircall.verify(request(body("aircall_call_ended.json")), "another-tenant-token")


def test_answered_outbound_call() -> None:
    # Connected from answered_at to ended_at; Aircall's own duration (with the ringing) in the attributes.
    assert maps(aircall.VENDOR, "aircall_call_ended.json") == mapped("aircall_call_ended.json")


def test_missed_inbound_call_with_voicemail_and_no_agent() -> None:
    missed = "aircall_call_missed_voicemail.json"
    assert maps(aircall.VENDOR, missed) == mapped(missed)


def test_missed_inbound_call_without_user_is_unassigned_on_the_number_it_came_in_on() -> None:
    # Nobody picked up, so Aircall names no user: the line's number (spaces and dashes dropped, as a
    # rep's phone alias is written) stands for the rep, which leaves the call listed as unassigned.
    missed = "aircall_call_missed.json"
    assert maps(aircall.VENDOR, missed) == mapped(missed)


@pytest.mark.parametrize(
    ("number", "alias"),
    [
        ({"id": 441, "digits": "+33 1 76 36 06 95"}, RepAlias(kind="phone", value="+33176360695")),
        ({"id": 441, "digits": "+1 (415) 555.0100"}, RepAlias(kind="phone", value="+14155550100")),
        ({"id": 441, "digits": " - "}, None),
        ({"id": 441}, None),
        (None, None),
        ("+1 415-555-0100", None),
    ],
    ids=["french", "punctuated", "no-digits", "no-digits-field", "no-number", "not-an-object"],
)
def test_the_number_a_call_without_user_came_in_on(number: object, alias: RepAlias | None) -> None:
    payload = aircall.parse(body("aircall_call_missed.json"))
    payload["data"]["number"] = number
    (vendor_event,) = aircall.to_events(payload, CTX).events
    assert vendor_event.rep_alias == alias


def test_a_user_names_the_rep_rather_than_the_number() -> None:
    payload = aircall.parse(body("aircall_call_missed.json"))
    payload["data"]["user"] = {"id": 123456, "name": "Dana Rep"}
    (vendor_event,) = aircall.to_events(payload, CTX).events
    assert vendor_event.rep_alias == RepAlias(kind="aircall_user_id", value="123456")


def test_unanswered_without_voicemail_is_no_answer() -> None:
    payload = aircall.parse(body("aircall_call_missed_voicemail.json"))
    payload["data"]["voicemail"] = None
    (vendor_event,) = aircall.to_events(payload, CTX).events
    assert vendor_event.event.outcome == "no_answer"


def test_other_events_are_ignored() -> None:
    result = aircall.to_events(aircall.parse(body("aircall_call_created.json")), CTX)
    assert (result.events, result.ignored) == ([], 1)


@pytest.mark.parametrize("event", ["transcription.created", "summary.created", "sentiment.created"])
def test_ai_insight_events_are_acknowledged_without_a_transcript(event: str) -> None:
    # They announce what GET /v1/calls/{id}/transcription (etc.) holds; ingest calls no vendor API.
    payload = {"resource": event.split(".")[0], "event": event, "timestamp": 1783437800, "token": TOKEN}
    result = aircall.to_events({**payload, "data": {"call_id": 812345678}}, CTX)
    assert (result.events, result.ignored) == ([], 1)


def test_same_delivery_twice_gives_the_same_id() -> None:
    first = aircall.to_events(aircall.parse(body("aircall_call_ended.json")), CTX)
    again = aircall.to_events(aircall.parse(body("aircall_call_ended.json")), CTX)
    assert first == again
    assert first.events[0].event.event_id == "aircall:812345678:call.ended"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event": None}, "event"),
        ({"data": "call"}, "data"),
        ({"data": {"direction": "outbound"}}, "data.id"),
        ({"data": {"id": 1, "direction": "sideways"}}, "data.direction"),
        ({"data": {"id": 1, "ended_at": "late"}}, "data.ended_at"),
    ],
)
def test_malformed_payload_names_the_field(change: dict[str, object], field: str) -> None:
    payload = {**orjson.loads(body("aircall_call_ended.json")), **change}
    with pytest.raises(PayloadError) as caught:
        aircall.to_events(payload, CTX)
    assert caught.value.field == field


def test_body_that_is_not_an_object() -> None:
    with pytest.raises(PayloadError):
        aircall.parse(b"[1, 2]")
