from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from twilio.request_validator import RequestValidator

from services.core.events import RepAlias
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret
from services.ingest.app import create_app
from services.ingest.sources import twilio
from services.ingest.sources.common import InboundRequest, PayloadError, SignatureError
from tests.conftest import Stack
from tests.factories import TenantFactory
from tests.ingest.harness import served
from tests.ingest.sources.support import CTX, NOW, body, mapped, maps

TOKEN = "9f2c1e0b7a6d5c4b3a2918f7e6d5c4b3"
URL = "https://hooks.salesloop.example/webhooks/twilio/acme"


def signed(
    payload: bytes, *, token: str = TOKEN, url: str = URL, signed_url: str | None = None
) -> InboundRequest:
    """Signed by Twilio's own helper library, the way Twilio signs a status callback."""
    params = dict(parse_qsl(payload.decode(), keep_blank_values=True))
    signature = RequestValidator(token).compute_signature(signed_url or url, params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return InboundRequest("POST", url, headers, payload, NOW)


def test_signature_from_twilio_library_passes() -> None:
    request = signed(body("twilio_outbound_completed.form"))
    twilio.verify(request, TOKEN)
    twilio.verify(
        dataclasses.replace(request, headers={"x-twilio-signature": request.headers["X-Twilio-Signature"]}),
        TOKEN,
    )


def test_our_signature_passes_twilio_library() -> None:
    payload = body("twilio_inbound_no_answer.form")
    params = parse_qsl(payload.decode())
    assert RequestValidator(TOKEN).validate(URL, dict(params), twilio.sign(TOKEN, URL, params))


@pytest.mark.parametrize(
    ("called", "signed_as"),
    [
        (URL, "https://hooks.salesloop.example:443/webhooks/twilio/acme"),
        (URL.replace(".example/", ".example:443/"), URL),
    ],
)
def test_url_with_or_without_default_port(called: str, signed_as: str) -> None:
    twilio.verify(signed(body("twilio_ringing.form"), url=called, signed_url=signed_as), TOKEN)


def test_query_string_is_part_of_the_signed_url() -> None:
    url = URL + "?tenant_hint=acme&v=2"
    twilio.verify(signed(body("twilio_ringing.form"), url=url), TOKEN)
    with pytest.raises(SignatureError):
        twilio.verify(signed(body("twilio_ringing.form"), url=url, signed_url=URL), TOKEN)


DEFAULT_PORT = URL.replace(".example/", ".example:443/")


@pytest.mark.parametrize(
    ("signed_as", "arrives_as"),
    [
        (URL + "?contact=O'Brien", URL + "?contact=O%27Brien"),
        (URL + "?contact=O%27Brien", URL + "?contact=O'Brien"),
        (URL + "?a=it's&b=Sull'Adda", URL + "?a=it%27s&b=Sull%27Adda"),
        (URL + "?a=it%27s&b=Sull%27Adda", URL + "?a=it's&b=Sull%27Adda"),
        (URL + "?contact=O'Brien", DEFAULT_PORT + "?contact=O%27Brien"),
        (DEFAULT_PORT + "?contact=O%27Brien", URL + "?contact=O'Brien"),
    ],
    ids=["quote-arrives-encoded", "encoded-arrives-as-quote", "every-quote", "some-quotes", "port", "port-2"],
)
def test_a_quote_in_the_query_passes_encoded_or_not(signed_as: str, arrives_as: str) -> None:
    # Twilio signs the URL as configured; a ' may reach us as %27, or the reverse (twilio-node validates
    # with the query escaped and unescaped since 5.x for that reason).
    twilio.verify(signed(body("twilio_ringing.form"), url=arrives_as, signed_url=signed_as), TOKEN)


@pytest.mark.parametrize(
    ("signed_as", "arrives_as"),
    [
        (URL + "?contact=OBrien", URL + "?contact=O%27Brien"),
        (URL + "?contact=O'Brien", URL + "?contact=O%2527Brien"),
        (URL + "?next=/calls", URL + "?next=%2Fcalls"),
        (URL + "?name=a+b", URL + "?name=a%20b"),
        (
            URL.replace(".example/", ".example:8443/") + "?contact=O'Brien",
            URL.replace(".example/", ".example:8444/") + "?contact=O%27Brien",
        ),
        (URL + "?a=it's&b=Sull%27Adda", URL + "?a=it%27s&b=Sull%27Adda"),
        (URL.replace("/acme", "/acme'") + "?contact=O'Brien", URL + "?contact=O'Brien"),
    ],
    ids=["other-value", "double-encoded", "other-escape", "space", "other-port", "mixed", "quote-in-path"],
)
def test_no_other_url_variant_passes(signed_as: str, arrives_as: str) -> None:
    request = signed(body("twilio_ringing.form"), url=arrives_as, signed_url=signed_as)
    params = dict(parse_qsl(request.body.decode()))
    assert not RequestValidator(TOKEN).validate(arrives_as, params, request.headers["X-Twilio-Signature"])
    with pytest.raises(SignatureError, match="does not match"):
        twilio.verify(request, TOKEN)


def test_sha256_shared_key_signatures() -> None:
    payload = body("twilio_outbound_completed.form")
    params = dict(parse_qsl(payload.decode()))
    signature = RequestValidator(TOKEN).compute_signature(URL, params, "HMAC_SHA256")
    headers = {
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
    }
    twilio.verify(InboundRequest("POST", URL, headers, payload, NOW), TOKEN)
    with pytest.raises(SignatureError, match="does not match"):
        twilio.verify(InboundRequest("POST", URL, {"X-Twilio-Signature": signature}, payload, NOW), TOKEN)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda r: signed(r.body, token="another-token"), "does not match"),
        (
            lambda r: dataclasses.replace(r, body=r.body.replace(b"CallDuration=312", b"CallDuration=999")),
            "does not",
        ),
        (lambda r: dataclasses.replace(r, body=r.body + b"&Extra=1"), "does not match"),
        (lambda r: dataclasses.replace(r, url=URL.replace("acme", "globex")), "does not match"),
        (lambda r: dataclasses.replace(r, url=URL.replace("https", "http")), "does not match"),
        (lambda r: dataclasses.replace(r, headers={}), "missing X-Twilio-Signature"),
    ],
    ids=["wrong-token", "modified-body", "added-param", "other-url", "other-scheme", "no-signature"],
)
def test_refused(tamper: object, reason: str) -> None:
    request = tamper(signed(body("twilio_outbound_completed.form")))  # type: ignore[operator]
    with pytest.raises(SignatureError, match=reason):
        twilio.verify(request, TOKEN)


def test_outbound_completed_call() -> None:
    # The rep is the number that called (From), the buyer the number called.
    assert maps(twilio.VENDOR, "twilio_outbound_completed.form") == mapped("twilio_outbound_completed.form")


def test_inbound_no_answer_names_the_rep_by_the_number_called() -> None:
    assert maps(twilio.VENDOR, "twilio_inbound_no_answer.form") == mapped("twilio_inbound_no_answer.form")


def test_a_dial_leg_names_the_rep_by_the_number_dialled() -> None:
    # An inbound call put through to the rep with <Dial>: From is the caller (the buyer), To the rep.
    assert maps(twilio.VENDOR, "twilio_dial_leg_completed.form") == mapped("twilio_dial_leg_completed.form")


BUYER, REP = "+12125550177", "+14155550100"


@pytest.mark.parametrize(
    ("direction", "caller", "called", "rep", "buyer", "conversation"),
    [
        ("inbound", BUYER, REP, REP, BUYER, "inbound"),  # the buyer called the rep's number
        ("outbound-api", REP, BUYER, REP, BUYER, "outbound"),  # the API called the buyer as the rep
        ("outbound-dial", BUYER, REP, REP, BUYER, "inbound"),  # <Dial> put a caller through to the rep
        ("outbound-dial", BUYER, "client:dana", "client:dana", BUYER, "inbound"),  # ... to her browser
        ("inbound", "client:dana", BUYER, "client:dana", BUYER, "outbound"),  # her browser placed a call
        ("Outbound-Dial", BUYER, REP, REP, BUYER, "inbound"),
    ],
)
def test_the_rep_is_the_side_of_the_leg_that_belongs_to_the_team(
    direction: str, caller: str, called: str, rep: str, buyer: str, conversation: str
) -> None:
    params = {
        "CallSid": "CA1",
        "CallStatus": "completed",
        "Direction": direction,
        "From": caller,
        "To": called,
    }
    (vendor_event,) = twilio.to_events(params, CTX).events
    assert vendor_event.rep_alias == RepAlias(kind="phone", value=rep)
    assert (vendor_event.event.attributes or {})["buyer_phone"] == buyer
    assert vendor_event.event.direction == conversation


def test_a_leg_of_unknown_direction_names_nobody() -> None:
    params = {"CallSid": "CA1", "CallStatus": "completed", "Direction": "trunking", "From": BUYER, "To": REP}
    (vendor_event,) = twilio.to_events(params, CTX).events
    assert (vendor_event.rep_alias, vendor_event.event.direction) == (None, None)
    assert "buyer_phone" not in (vendor_event.event.attributes or {})


@pytest.mark.parametrize(
    ("status", "answered_by", "outcome"),
    [
        ("completed", None, "connected"),
        ("completed", "human", "connected"),
        ("completed", "machine_end_beep", "voicemail"),
        ("completed", "fax", "failed"),
        ("busy", None, "busy"),
        ("no-answer", None, "no_answer"),
        ("failed", None, "failed"),
        ("canceled", None, "no_answer"),
    ],
)
def test_outcomes(status: str, answered_by: str | None, outcome: str) -> None:
    params = {"CallSid": "CA1", "CallStatus": status, "Direction": "outbound-dial", "From": "+1", "To": "+2"}
    if answered_by:
        params["AnsweredBy"] = answered_by
    (vendor_event,) = twilio.to_events(params, CTX).events
    assert (vendor_event.event.outcome, vendor_event.event.direction) == (outcome, "inbound")
    assert vendor_event.event.occurred_at == NOW  # no Timestamp: the time it was received


@pytest.mark.parametrize("status", ["queued", "initiated", "ringing", "in-progress"])
def test_non_terminal_statuses_are_ignored(status: str) -> None:
    result = twilio.to_events({"CallSid": "CA1", "CallStatus": status}, CTX)
    assert (result.events, result.ignored) == ([], 1)


def test_same_callback_twice_gives_the_same_event() -> None:
    first = twilio.to_events(twilio.parse(body("twilio_outbound_completed.form")), CTX)
    again = twilio.to_events(twilio.parse(body("twilio_outbound_completed.form")), CTX)
    assert first == again
    ringing = twilio.to_events(twilio.parse(body("twilio_ringing.form")), CTX)
    assert ringing.events == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"CallStatus": "completed"}, "CallSid"),
        ({"CallSid": "CA1"}, "CallStatus"),
        ({"CallSid": "CA1", "CallStatus": "completed", "CallDuration": "12.5"}, "CallDuration"),
        ({"CallSid": "CA1", "CallStatus": "completed", "Timestamp": "tomorrow"}, "Timestamp"),
        (
            {"CallSid": "CA1", "CallStatus": "busy", "Timestamp": "Fri, 01 Jan 2100 00:00:00 +0000"},
            "Timestamp",
        ),
    ],
)
def test_malformed_callback_names_the_field(params: dict[str, str], field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        twilio.to_events(twilio.parse(urlencode(params).encode()), CTX)
    assert caught.value.field == field


def test_body_that_is_not_a_form() -> None:
    with pytest.raises(PayloadError):
        twilio.parse(b"\xff\xfe")


# Event Streams posts JSON arrays of CloudEvents signed with bodySHA256; call progress events wrap the
# status callback's request. Studio's "Make HTTP Request" widget posts a JSON body of the flow's own.
EVENT_STREAMS = (
    b'[{"specversion": "1.0", "type": "com.twilio.voice.status-callback.call.completed",'
    b' "source": "AB00000000000000000000000001", "id": "NO00000000000000000000000001",'
    b' "dataschema": "https://events-schemas.twilio.com/Voice.WebhookEvent/2",'
    b' "datacontenttype": "application/json", "time": "2026-07-07T15:09:02.000Z",'
    b' "data": {"sid": "CA7d2c9b8a6f5e4d3c2b1a0f9e8d7c6b5a", "request": {"method": "POST",'
    b' "url": "https://hooks.salesloop.example/webhooks/twilio/acme", "parameters": {}}}}]'
)


def signed_json(payload: bytes, *, token: str = TOKEN, hashed: bytes | None = None) -> InboundRequest:
    """A JSON delivery as Twilio signs one: the body's SHA-256 in the URL, the signature over the URL."""
    url = f"{URL}?bodySHA256={hashlib.sha256(payload if hashed is None else hashed).hexdigest()}"
    headers = {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(url, {}),
        "Content-Type": "application/json",
    }
    return InboundRequest("POST", url, headers, payload, NOW)


def test_a_json_webhook_is_verified_then_refused_as_no_status_callback() -> None:
    request = signed_json(EVENT_STREAMS)
    assert RequestValidator(TOKEN).validate(
        request.url, EVENT_STREAMS.decode(), request.headers["X-Twilio-Signature"]
    )
    with pytest.raises(PayloadError, match="status callbacks are form posts") as caught:
        twilio.verify(request, TOKEN)
    assert caught.value.field is None


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (signed_json(EVENT_STREAMS, token="another-token"), "signature does not match"),
        (signed_json(EVENT_STREAMS, hashed=b"[]"), "bodySHA256"),
        (dataclasses.replace(signed_json(EVENT_STREAMS), headers={}), "missing X-Twilio-Signature"),
        (
            dataclasses.replace(
                signed_json(EVENT_STREAMS), body=EVENT_STREAMS.replace(b"completed", b"ringing")
            ),
            "bodySHA256",
        ),
        (dataclasses.replace(signed_json(EVENT_STREAMS), url=URL), "missing bodySHA256"),
    ],
    ids=["wrong-token", "other-body-hash", "no-signature", "modified-body", "no-body-hash"],
)
def test_a_json_webhook_that_does_not_verify_is_refused_as_any(request_: InboundRequest, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        twilio.verify(request_, TOKEN)


# ------------------------------------------------------------------------------------ through the route

PUBLIC = "https://hooks.salesloop.example"


@dataclasses.dataclass(frozen=True)
class Route:
    client: httpx.AsyncClient
    url: str  # the tenant's Twilio URL, as pasted into Twilio

    async def post(self, url: str, payload: bytes, signature: str, content_type: str) -> httpx.Response:
        headers = {"X-Twilio-Signature": signature, "Content-Type": content_type}
        return await self.client.post(url, content=payload, headers=headers)


@pytest.fixture(scope="module")
async def route(stack: Stack, engine: AsyncEngine, tenants: TenantFactory) -> AsyncIterator[Route]:
    t = await tenants.create()
    await set_secret(engine, DEV_SECRET_KEY, t.slug, "twilio", TOKEN)
    async with served(create_app(stack.settings()), PUBLIC) as client:
        yield Route(client, f"{PUBLIC}/webhooks/twilio/{t.slug}")


async def test_a_json_webhook_is_answered_after_its_signature_is_checked(route: Route) -> None:
    url = f"{route.url}?bodySHA256={hashlib.sha256(EVENT_STREAMS).hexdigest()}"
    signature = RequestValidator(TOKEN).compute_signature(url, {})
    r = await route.post(url, EVENT_STREAMS, signature, "application/json")
    assert r.status_code == 422, r.text
    assert "status callbacks are form posts" in r.json()["error"]["details"][0]["reason"]
    for wrong in (RequestValidator("another-token").compute_signature(url, {}), ""):
        r = await route.post(url, EVENT_STREAMS, wrong, "application/json")
        assert r.status_code == 401, r.text
    r = await route.post(url, EVENT_STREAMS, signature, "text/plain")
    assert r.status_code == 415, r.text


@pytest.mark.parametrize(("signed_as", "sent_as"), [("O'Brien", "O%27Brien"), ("O%27Brien", "O'Brien")])
async def test_a_quote_in_the_query_passes_through_the_route(
    route: Route, signed_as: str, sent_as: str
) -> None:
    payload = body("twilio_ringing.form")
    signature = RequestValidator(TOKEN).compute_signature(
        f"{route.url}?contact={signed_as}", dict(parse_qsl(payload.decode()))
    )
    r = await route.post(f"{route.url}?contact={sent_as}", payload, signature, twilio.FORM)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": 0, "ignored": 1}
