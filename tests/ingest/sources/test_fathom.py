"""Fathom: meetings signed by the Standard Webhooks library, as Fathom signs them, mapped to one call
with its transcript; and one delivery through the route to the topic."""

from __future__ import annotations

import base64
import copy
import dataclasses
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from services.core.limits import MAX_SECONDS, MAX_SEGMENT_TEXT, MAX_TRANSCRIPT_SEGMENTS
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret
from services.ingest.app import create_app
from services.ingest.sources import fathom as adapter
from services.ingest.sources.common import InboundRequest, PayloadError
from tests.conftest import Stack
from tests.factories import TenantFactory
from tests.ingest.harness import one_partition_topic, served
from tests.ingest.sources.support import CTX, NOW, body, malformed, mapped, maps, refused, with_header

SECRET = "whsec_" + base64.b64encode(b"fathom-webhook-secret-24b").decode()
URL = "https://hooks.salesloop.example/webhooks/fathom/acme"
MEETING = "fathom_new_meeting.json"
MSG_ID = "msg_2x2zwLOcWaRTzsLK8KtbQt1FTk9"
JSON = {"content-type": "application/json"}


def signed(
    payload: bytes, *, secret: str = SECRET, sent_at: datetime = NOW, msg_id: str = MSG_ID
) -> InboundRequest:
    """A delivery as Fathom sends it: signed with the Standard Webhooks library, received at NOW."""
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, sent_at, payload.decode()),
    }
    return InboundRequest("POST", URL, headers, payload, NOW)


# ------------------------------------------------------------------------------------------ verification


def test_a_delivery_signed_with_the_webhook_secret_verifies() -> None:
    adapter.verify(signed(body(MEETING)), SECRET)
    # Fathom's SDKs hand the secret to Svix as it is; a secret without the prefix is the same key.
    adapter.verify(signed(body(MEETING)), SECRET.removeprefix("whsec_"))
    # Header names are case-insensitive, as HTTP has them.
    upper = signed(body(MEETING))
    adapter.verify(
        dataclasses.replace(upper, headers={k.upper(): v for k, v in upper.headers.items()}), SECRET
    )


def test_one_matching_entry_among_rotated_and_malformed_ones_is_enough() -> None:
    request = signed(body(MEETING))
    good = request.headers["webhook-signature"]
    rotated = signed(body(MEETING), secret="whsec_" + base64.b64encode(b"the-old-secret").decode())
    old = rotated.headers["webhook-signature"]
    for listed in (f"{old} {good}", f"v1 v2,abc v1,!!notbase64 {good}", f"{good}  v1a,xyz"):
        adapter.verify(with_header(request, "webhook-signature", listed), SECRET)
    refused(
        adapter.VENDOR, with_header(request, "webhook-signature", f"{old} v2,{good[3:]}"), SECRET, "match"
    )


def test_the_timestamp_must_be_within_five_minutes_either_way() -> None:
    adapter.verify(signed(body(MEETING), sent_at=NOW - timedelta(minutes=5)), SECRET)
    adapter.verify(signed(body(MEETING), sent_at=NOW + timedelta(minutes=5)), SECRET)
    late = signed(body(MEETING), sent_at=NOW - timedelta(minutes=5, seconds=1))
    refused(adapter.VENDOR, late, SECRET, "older than 5 minutes")
    early = signed(body(MEETING), sent_at=NOW + timedelta(minutes=5, seconds=1))
    refused(adapter.VENDOR, early, SECRET, "in the future")


def _modified() -> InboundRequest:
    """Signed by Fathom, then changed on the way: the buyer's words put in the rep's mouth."""
    request = signed(body(MEETING))
    changed = request.body.replace(b'"display_name": "Tom Becker"', b'"display_name": "Alice Johnson"')
    assert changed != request.body
    return dataclasses.replace(request, body=changed)


def _retimed() -> InboundRequest:
    """A signature replayed with a fresh timestamp: the timestamp is signed too."""
    request = signed(body(MEETING), sent_at=NOW - timedelta(hours=1))
    return with_header(request, "webhook-timestamp", str(int(NOW.timestamp())))


REFUSED = {
    "wrong-secret": (
        signed(body(MEETING), secret="whsec_" + base64.b64encode(b"another-webhook").decode()),
        "does not match",
    ),
    "modified-body": (_modified(), "does not match"),
    "other-message-id": (with_header(signed(body(MEETING)), "webhook-id", "msg_other"), "does not match"),
    "replayed-with-new-timestamp": (_retimed(), "does not match"),
    "no-id": (with_header(signed(body(MEETING)), "webhook-id", None), "missing webhook-id"),
    "no-signature": (
        with_header(signed(body(MEETING)), "webhook-signature", None),
        "missing webhook-signature",
    ),
    "empty-signature": (
        with_header(signed(body(MEETING)), "webhook-signature", " "),
        "missing webhook-signature",
    ),
    "no-timestamp": (
        with_header(signed(body(MEETING)), "webhook-timestamp", None),
        "missing webhook-timestamp",
    ),
    "bad-timestamp": (
        with_header(signed(body(MEETING)), "webhook-timestamp", "soon"),
        "not a Unix timestamp",
    ),
    "not-utf8": (dataclasses.replace(signed(body(MEETING)), body=b"\xff" + body(MEETING)), "does not match"),
}


@pytest.mark.parametrize(("delivery", "reason"), REFUSED.values(), ids=REFUSED.keys())
def test_refused(delivery: InboundRequest, reason: str) -> None:
    refused(adapter.VENDOR, delivery, SECRET, reason)


def test_the_secret_is_a_standard_webhooks_secret() -> None:
    adapter.check_secret(SECRET)
    adapter.check_secret(SECRET.removeprefix("whsec_"))
    for wrong in ("", "whsec_", "whsec_not base64!", "my fathom password"):
        with pytest.raises(ValueError, match="webhook's secret"):
            adapter.check_secret(wrong)
    decoy = adapter.VENDOR.decoy()
    adapter.check_secret(decoy)
    assert decoy.startswith("whsec_")
    assert decoy != adapter.VENDOR.decoy()


# ----------------------------------------------------------------------------------------------- mapping


def test_a_meeting_with_a_buyer_maps_to_one_connected_call_with_its_transcript() -> None:
    # The recording ran 60 s (15:00:05 to 15:01:05). An utterance ends when the next starts, or after
    # 2 s + 1 s a word if sooner: "That's right." at 43 s ends at 43 + 2 + 2 = 47, not at 52; the last
    # ("Let's ... VP.", 9 words, at 52 s) at the recording's end, 60 s, before 52 + 2 + 9 = 63. Sam Lee
    # is an internal invitee, so the rep's side; Tom Becker is on no invitation, so the buyer's.
    assert maps(adapter.VENDOR, MEETING) == mapped(MEETING)


def _meeting(**changes: Any) -> dict[str, Any]:
    meeting: dict[str, Any] = copy.deepcopy(orjson.loads(body(MEETING)))
    meeting.update(changes)
    return {k: v for k, v in meeting.items() if v is not ...}


def _call(meeting: dict[str, Any]) -> Any:
    [event] = adapter.to_events(meeting, CTX).events
    return event


def test_a_redelivery_names_the_same_event() -> None:
    first = adapter.to_events(adapter.parse(body(MEETING)), CTX)
    again = adapter.to_events(adapter.parse(body(MEETING)), dataclasses.replace(CTX, received_at=NOW))
    assert first == again
    assert first.events[0].event.event_id == "fathom:424242"
    # Fathom sends the id as a number; as text it is the same recording.
    assert _call(_meeting(recording_id="424242")).event.event_id == "fathom:424242"


def test_a_meeting_without_its_transcript_still_maps() -> None:
    for without in (_meeting(transcript=...), _meeting(transcript=None)):
        call = _call(without)
        assert call.event.transcript is None
        assert (call.event.event_id, call.event.outcome, call.event.duration_s) == (
            "fathom:424242",
            "connected",
            60,
        )
        assert call.event.contact_id == "jane.smith@client.com"
        assert call.rep_alias is not None
        assert call.rep_alias.value == "alice.johnson@acme.com"
    assert _call(_meeting(transcript=[])).event.transcript == []


def test_an_internal_meeting_is_acknowledged_and_ignored() -> None:
    result = adapter.to_events(_meeting(calendar_invitees_domains_type="only_internal"), CTX)
    assert (result.events, result.ignored) == ([], 1)
    # Without Fathom's verdict, an external invitee makes it a buyer meeting.
    unsure = _meeting(calendar_invitees_domains_type=...)
    assert len(adapter.to_events(unsure, CTX).events) == 1
    invitees = [dict(i, is_external=False) for i in unsure["calendar_invitees"]]
    assert adapter.to_events({**unsure, "calendar_invitees": invitees}, CTX).ignored == 1


def _speakers(*speakers: dict[str, Any], **meeting: Any) -> list[str]:
    items = [
        {"speaker": s, "text": "Hello there.", "timestamp": f"00:00:{5 * i:02d}"}
        for i, s in enumerate(speakers)
    ]
    transcript = _call(_meeting(transcript=items, **meeting)).event.transcript
    return [segment.speaker for segment in transcript]


def test_each_speaker_is_on_the_rep_side_or_the_buyer_side() -> None:
    assert _speakers(
        {
            "display_name": "A. Johnson",
            "matched_calendar_invitee_email": "Alice.Johnson@ACME.com",
        },  # recorder
        {
            "display_name": "Jane",
            "matched_calendar_invitee_email": "JANE.SMITH@client.com",
        },  # external invitee
        {"display_name": "Sam", "matched_calendar_invitee_email": "sam.lee@acme.com"},  # internal invitee
        {"display_name": "Kim", "matched_calendar_invitee_email": "kim@acme.com"},  # the recorder's domain
        {"display_name": "Lou", "matched_calendar_invitee_email": "lou@elsewhere.org"},  # another domain
        {"display_name": "  alice   JOHNSON "},  # the recorder's name
        {"display_name": "Sam Lee"},  # an internal invitee's name
        {"display_name": "Jane Smith"},  # an external invitee's name
        {"display_name": "Speaker 3"},  # nobody the meeting names
        {},
    ) == ["rep", "buyer", "rep", "rep", "buyer", "rep", "rep", "buyer", "buyer", "buyer"]


def test_the_rep_is_the_recorder_by_address() -> None:
    call = _call(_meeting(recorded_by={"name": "Alice", "email": "Alice.Johnson@Acme.com", "team": None}))
    assert call.rep_alias is not None
    assert (call.rep_alias.kind, call.rep_alias.value) == ("email", "alice.johnson@acme.com")
    assert _call(_meeting(recorded_by=...)).rep_alias is None
    # An address no alias can be names nobody: the call counts as unassigned rather than being refused.
    assert _call(_meeting(recorded_by={"email": "x" * 400 + "@acme.com"})).rep_alias is None


def test_segments_are_sorted_blank_ones_left_out_and_fractions_kept() -> None:
    items = [
        {"speaker": {"display_name": "Jane Smith"}, "text": "Second.", "timestamp": "00:01:00.5"},
        {"speaker": {"display_name": "Alice Johnson"}, "text": "First one here.", "timestamp": "00:00:58"},
        {"speaker": {"display_name": "Jane Smith"}, "text": "  ", "timestamp": "00:00:59"},
    ]
    # Without an end of the recording, the last utterance lasts 2 s + 1 s a word.
    transcript = _call(_meeting(transcript=items, recording_end_time=...)).event.transcript
    assert [(s.speaker, s.start_s, s.end_s, s.text) for s in transcript] == [
        ("rep", 58, 60.5, "First one here."),
        ("buyer", 60.5, 63.5, "Second."),
    ]
    assert _call(_meeting(recording_end_time=...)).event.duration_s is None


def test_an_utterance_after_the_recording_ended_lasts_no_time() -> None:
    items = [{"speaker": {}, "text": "Late words.", "timestamp": "01:00:00"}]
    [segment] = _call(_meeting(transcript=items)).event.transcript
    assert (segment.start_s, segment.end_s) == (3600, 3600)


def _item(**changes: Any) -> dict[str, Any]:
    return {"speaker": {"display_name": "Jane Smith"}, "text": "Fine.", "timestamp": "00:00:01", **changes}


def _with(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    meeting = _meeting()
    change(meeting)
    return meeting


MALFORMED = {
    "no-recording-id": (_meeting(recording_id=...), "recording_id"),
    "long-recording-id": (_meeting(recording_id="9" * 300), "recording_id"),
    "no-start": (_meeting(recording_start_time=...), "recording_start_time"),
    "bad-start": (_meeting(recording_start_time="yesterday"), "recording_start_time"),
    "naive-start": (_meeting(recording_start_time="2026-07-07T15:00:05"), "recording_start_time"),
    "future-start": (
        _meeting(recording_start_time="2030-01-01T00:00:00Z", recording_end_time="2030-01-01T01:00:00Z"),
        "recording_start_time",
    ),
    "end-before-start": (_meeting(recording_end_time="2026-07-07T14:00:00Z"), "recording_end_time"),
    "endless": (_meeting(recording_end_time="2027-07-07T15:00:05Z"), "recording_end_time"),
    "invitees-not-a-list": (_meeting(calendar_invitees={"name": "Jane"}), "calendar_invitees"),
    "invitee-not-an-object": (_meeting(calendar_invitees=["jane@client.com"]), "calendar_invitees.0"),
    "recorder-not-an-object": (_meeting(recorded_by="alice@acme.com"), "recorded_by"),
    "transcript-not-a-list": (_meeting(transcript="Hi Jane"), "transcript"),
    "item-not-an-object": (_with(lambda m: m["transcript"].append("Bye.")), "transcript.8"),
    "speaker-not-an-object": (_meeting(transcript=[_item(), _item(speaker="Jane")]), "transcript.1.speaker"),
    "no-timestamp": (_meeting(transcript=[_item(timestamp=None)]), "transcript.0.timestamp"),
    "bad-timestamp": (_meeting(transcript=[_item(), _item(timestamp="5:32")]), "transcript.1.timestamp"),
    "seconds-over-59": (_meeting(transcript=[_item(timestamp="00:00:60")]), "transcript.0.timestamp"),
    "offset-too-far": (_meeting(transcript=[_item(timestamp="9999:00:00")]), "transcript.0.timestamp"),
    "text-not-a-string": (_meeting(transcript=[_item(text=["Fine."])]), "transcript.0.text"),
    "text-with-nul": (_meeting(transcript=[_item(), _item(text="Fi\x00ne.")]), "transcript.1.text"),
    "text-too-long": (_meeting(transcript=[_item(text="a" * (MAX_SEGMENT_TEXT + 1))]), "transcript.0.text"),
    "too-many-segments": (_meeting(transcript=[_item()] * (MAX_TRANSCRIPT_SEGMENTS + 1)), "transcript"),
}


@pytest.mark.parametrize(("payload", "field"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_meeting_names_the_field(payload: dict[str, Any], field: str) -> None:
    assert malformed(adapter.VENDOR, payload).field == field


def test_the_limits_hold_at_their_edges() -> None:
    many = _call(_meeting(transcript=[_item()] * MAX_TRANSCRIPT_SEGMENTS)).event.transcript
    assert len(many) == MAX_TRANSCRIPT_SEGMENTS
    [long] = _call(_meeting(transcript=[_item(text="a" * MAX_SEGMENT_TEXT)])).event.transcript
    assert len(long.text) == MAX_SEGMENT_TEXT
    # The furthest offset there can be: its utterance ends there too, not 2 s + 1 s a word later.
    furthest = f"{MAX_SECONDS // 3600}:{MAX_SECONDS // 60 % 60:02d}:{MAX_SECONDS % 60:02d}"
    [late] = _call(_meeting(transcript=[_item(timestamp=furthest)], recording_end_time=...)).event.transcript
    assert (late.start_s, late.end_s) == (MAX_SECONDS, MAX_SECONDS)


def test_parse_wants_a_meeting_object() -> None:
    for raw in (b"[]", b"{", b'"meeting"', b"\xff"):
        with pytest.raises(PayloadError):
            adapter.parse(raw)


# --------------------------------------------------------------------------------------------- the route


async def test_a_signed_meeting_reaches_the_topic(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    await set_secret(engine, DEV_SECRET_KEY, t.slug, "fathom", secret)
    async with (
        one_partition_topic(stack, "ingest-fathom") as topic,
        served(create_app(topic.settings)) as client,
    ):
        path = f"/webhooks/fathom/{t.slug}"
        for attempt in ("msg_first", "msg_first", "msg_retriggered"):  # a retry, then the meeting sent anew
            delivery = signed(body(MEETING), secret=secret, sent_at=datetime.now(UTC), msg_id=attempt)
            r = await client.post(path, content=delivery.body, headers={**delivery.headers, **JSON})
            assert (r.status_code, r.json()) == (202, {"accepted": 1, "ignored": 0}), r.text
        wrong = signed(body(MEETING), sent_at=datetime.now(UTC))  # the module's secret, not the tenant's
        r = await client.post(path, content=wrong.body, headers={**wrong.headers, **JSON})
        assert (r.status_code, r.json()["error"]["details"][0]["code"]) == (401, "bad_signature")
        sentinel = {"event_id": "sentinel", "type": "email.sent", "occurred_at": "2026-07-07T16:00:00Z"}
        auth = {"Authorization": f"Bearer {t.ingest_key}"}
        assert (await client.post(f"/v1/events/{t.slug}", json=sentinel, headers=auth)).status_code == 202
        *records, _ = await topic.read_until("sentinel")
    values = [orjson.loads(record.value) for record in records]
    # Each delivery is the event the adapter maps the fixture to, with the service's fields filled in;
    # the aggregator counts the one event id once.
    want = mapped(MEETING).events[0].event.model_dump(mode="json", exclude_none=True)
    assert [{k: v for k, v in value.items() if k != "received_at"} for value in values] == 3 * [
        {
            **want,
            "tenant": t.slug,
            "source": "fathom",
            "rep_alias": {"kind": "email", "value": "alice.johnson@acme.com"},
        }
    ]
    assert {record.key for record in records} == {f"{t.slug}:jane.smith@client.com".encode()}
