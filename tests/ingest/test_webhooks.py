"""The vendor routes `POST /webhooks/{vendor}/{tenant}` in-process, against the session's real broker.

Deliveries are the vendors' own payload shapes (tests/ingest/sources/fixtures), signed the way each
vendor signs: Twilio's RequestValidator and hubspot-api-client's Signature make those signatures;
SendGrid publishes only a verifier, so its signature is made with an ECDSA key as SendGrid does and
checked with SendGrid's EventWebhook. As in test_events.py, what a request produced is what lies
between two sentinel events on a one-partition topic.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import orjson
import pytest
import stripe
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hubspot.utils.signature import Signature
from sendgrid.helpers.eventwebhook import EventWebhook
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook
from twilio.request_validator import RequestValidator

from devstack.embedded import free_port
from services.core.crm import SCHEMA_HEADER as CRM_SCHEMA_HEADER
from services.core.settings import DEV_SECRET_KEY
from services.core.source_settings import set_option
from services.core.tenancy import set_secret
from services.ingest.app import create_app
from services.ingest.ratelimit import RateLimiter
from services.ingest.sources import VENDORS, option_sets, salesforce, sendgrid
from services.ingest.sources.registry import JSON, Vendor
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.ingest.harness import Topic, metric, one_partition_topic, served
from tests.ingest.sources.support import body as fixture
from tests.ingest.sources.support import mapped

Record = ConsumerRecord[bytes, bytes]
# What the in-process client claims as its address: the service as reached directly, port included.
DIRECT = "http://127.0.0.1:8001"
PUBLIC = "https://hooks.example.com"
FORM = "application/x-www-form-urlencoded"
SF_ORG = "00D5e000000KQ2eEAG"  # the OrganizationId in the Salesforce fixtures


def _sf_secret(org: str = SF_ORG) -> str:
    """A Salesforce secret: the org id and the endpoint token its URL carries."""
    return f"{org}:{secrets.token_urlsafe(32)}"


SENTINEL = {"type": "email.sent", "occurred_at": "2026-10-05T10:00:00Z", "rep_id": "sentinel"}


def _sendgrid_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, base64.b64encode(der).decode()


@dataclass(frozen=True)
class Secrets:
    """One tenant's secrets for every vendor, as the vendors hold them."""

    hubspot: str = field(default_factory=lambda: secrets.token_hex(16))
    salesforce: str = field(default_factory=_sf_secret)
    twilio: str = field(default_factory=lambda: secrets.token_hex(16))
    aircall: str = field(default_factory=lambda: secrets.token_hex(8))
    sendgrid: tuple[ec.EllipticCurvePrivateKey, str] = field(default_factory=_sendgrid_key)
    stripe: str = field(default_factory=lambda: "whsec_" + secrets.token_urlsafe(24))
    fathom: str = field(default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode())

    def stored(self) -> dict[str, str]:
        return {
            "hubspot": self.hubspot,
            "salesforce": self.salesforce,
            "twilio": self.twilio,
            "aircall": self.aircall,
            "sendgrid": self.sendgrid[1],
            "stripe": self.stripe,
            "fathom": self.fathom,
        }


@dataclass(frozen=True)
class Delivery:
    """One webhook request: the tenant in its path, its exact body and headers."""

    vendor: str
    tenant: str
    body: bytes
    headers: dict[str, str]
    query: str = ""  # Salesforce's endpoint token

    @property
    def path(self) -> str:
        return f"/webhooks/{self.vendor}/{self.tenant}" + (f"?{self.query}" if self.query else "")


def sign(
    vendor: str,
    body: bytes,
    tenant: str,
    keys: Secrets,
    *,
    base: str = DIRECT,
    age: timedelta = timedelta(0),
) -> Delivery:
    """`body` as the vendor would send it to `base`/webhooks/`vendor`/`tenant`, `age` ago."""
    url = f"{base}/webhooks/{vendor}/{tenant}"
    sent_at = datetime.now(UTC) - age
    if vendor == "hubspot":
        timestamp = str(int(sent_at.timestamp() * 1000))
        signature = Signature.get_signature(
            keys.hubspot, body.decode(), "v3", http_uri=url, http_method="POST", timestamp=timestamp
        )
        headers = {
            "content-type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": timestamp,
        }
    elif vendor == "twilio":
        params = dict(parse_qsl(body.decode(), keep_blank_values=True))
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": RequestValidator(keys.twilio).compute_signature(url, params),
        }
    elif vendor == "sendgrid":
        timestamp = str(int(sent_at.timestamp()))
        signature = sendgrid.sign(keys.sendgrid[0], timestamp, body)
        assert EventWebhook(keys.sendgrid[1]).verify_signature(body.decode(), signature, timestamp)
        headers = {
            "content-type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
    elif vendor == "aircall":
        body = orjson.dumps({**orjson.loads(body), "token": keys.aircall})
        headers = {"content-type": "application/json"}
    elif vendor == "stripe":
        signature = stripe.WebhookSignature.generate_signature_header(
            body.decode(), keys.stripe, timestamp=int(sent_at.timestamp())
        )
        headers = {"content-type": "application/json; charset=utf-8", "Stripe-Signature": signature}
    elif vendor == "fathom":
        msg_id = "msg_" + secrets.token_hex(8)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(keys.fathom).sign(msg_id, sent_at, body.decode()),
        }
    else:
        # Messages carry the 18-character org id, whichever form the tenant's secret has.
        org, _, token = keys.salesforce.partition(":")
        if not SF_ORG.startswith(org):
            body = body.replace(SF_ORG.encode(), org.encode())
        headers = {"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'}
        return Delivery(vendor, tenant, body, headers, urlencode({"token": token}))
    return Delivery(vendor, tenant, body, headers)


@dataclass
class Harness:
    direct: httpx.AsyncClient
    proxied: httpx.AsyncClient  # an ingest configured with SALESLOOP_PUBLIC_BASE_URL=PUBLIC
    topic: Topic
    t: TenantCtx
    keys: Secrets
    bare: TenantCtx  # a tenant with no vendor secrets
    custom: TenantCtx  # a tenant with options set
    custom_keys: Secrets
    fenced: TenantCtx  # Salesforce allowed only from 10.0.0.0/8
    cursor: int = 0

    async def send(self, d: Delivery, client: httpx.AsyncClient | None = None) -> httpx.Response:
        return await (client or self.direct).post(d.path, content=d.body, headers=d.headers)

    async def produced_since(self, start: int) -> list[dict[str, Any]]:
        """Every event from offset `start` up to a sentinel posted now (excluded)."""
        event_id = f"sentinel-{secrets.token_hex(6)}"
        r = await self.direct.post(
            f"/v1/events/{self.t.slug}",
            json={**SENTINEL, "event_id": event_id},
            headers={"Authorization": f"Bearer {self.t.ingest_key}"},
        )
        assert r.status_code == 202, r.text
        *records, sentinel = await self.topic.read_until(event_id, start)
        self.cursor = sentinel.offset + 1
        # Entity updates travel beside the events; these tests look at the events.
        events = [rec for rec in records if CRM_SCHEMA_HEADER not in rec.headers]
        return [{**orjson.loads(rec.value), "_key": rec.key.decode() if rec.key else None} for rec in events]

    async def mark(self) -> int:
        await self.produced_since(self.cursor)
        return self.cursor


async def _tenant_with(tenants: TenantFactory, engine: AsyncEngine, keys: Secrets) -> TenantCtx:
    t = await tenants.create()
    for source, value in keys.stored().items():
        await set_secret(engine, DEV_SECRET_KEY, t.slug, source, value)
    return t


@pytest.fixture(scope="module")
async def hooks(stack: Stack, engine: AsyncEngine, tenants: TenantFactory) -> AsyncIterator[Harness]:
    async with one_partition_topic(stack, "ingest-webhooks") as topic:
        # Secrets and options are set before the first request: the ingest caches them for a few seconds.
        keys = Secrets()
        t = await _tenant_with(tenants, engine, keys)
        bare = await tenants.create()
        custom_keys = Secrets(salesforce=_sf_secret(SF_ORG[:15]))  # Setup shows the 15-character org id
        custom = await _tenant_with(tenants, engine, custom_keys)
        for source, key, value in [
            ("hubspot", "won_stages", "contractsigned"),
            ("hubspot", "lost_stages", "closedlost,churned"),
            ("hubspot", "legacy_signatures", "true"),
            ("salesforce", "mql_statuses", "Open - Not Contacted"),
            ("salesforce", "allowed_networks", "127.0.0.0/8"),
            ("salesforce", "channel_overrides", "Trade Show=paid_social"),
        ]:
            await set_option(engine, custom.slug, source, key, value, option_sets())
        fenced = await _tenant_with(tenants, engine, keys)
        await set_option(
            engine, fenced.slug, "salesforce", "allowed_networks", "10.0.0.0/8, 192.0.2.7", option_sets()
        )
        proxied_app = create_app(
            stack.settings(events_topic=topic.name, topic_partitions=1, public_base_url=PUBLIC)
        )
        async with (
            served(create_app(topic.settings), DIRECT) as direct,
            served(proxied_app, DIRECT) as proxied,
        ):
            yield Harness(direct, proxied, topic, t, keys, bare, custom, custom_keys, fenced)


# ---------------------------------------------------------------------------------------------- accepted

# (vendor, fixture): each delivery produces what the vendor's adapter maps the fixture to
# (tests/ingest/sources/fixtures/*.mapped.json).
ACCEPTED = {
    "hubspot deals": ("hubspot", "hubspot_deals.json"),
    "hubspot contacts": ("hubspot", "hubspot_contacts.json"),
    "twilio completed": ("twilio", "twilio_outbound_completed.form"),
    "aircall ended": ("aircall", "aircall_call_ended.json"),
    "sendgrid events": ("sendgrid", "sendgrid_events.json"),
    "stripe subscription": ("stripe", "stripe_subscription_updated.json"),
    "salesforce opportunities": ("salesforce", "salesforce_opportunities.xml"),
}


@pytest.mark.parametrize(("vendor", "name"), ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_a_signed_delivery_reaches_the_topic_with_its_rep_identities(
    hooks: Harness, vendor: str, name: str
) -> None:
    want = mapped(name)
    start = await hooks.mark()
    before = datetime.now(UTC)
    r = await hooks.send(sign(vendor, fixture(name), hooks.t.slug, hooks.keys))
    if vendor == "salesforce":
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == salesforce.ACK_CONTENT_TYPE
        assert r.content == salesforce.ack_response()
    else:
        assert (r.status_code, r.json()) == (202, {"accepted": len(want.events), "ignored": want.ignored})
    values = await hooks.produced_since(start)
    assert [(v["event_id"], v["type"], v.get("rep_alias")) for v in values] == [
        (e.event.event_id, e.event.type, e.rep_alias.model_dump() if e.rep_alias else None)
        for e in want.events
    ]
    assert {(v["tenant"], v["source"]) for v in values} == {(hooks.t.slug, vendor)}
    assert all(before <= datetime.fromisoformat(v["received_at"]) <= datetime.now(UTC) for v in values)
    # Vendor events carry no rep_id (the aggregator resolves the alias), so they are keyed by contact.
    assert all(v["_key"] == f"{hooks.t.slug}:{v.get('rep_id') or v.get('contact_id') or '-'}" for v in values)
    # HubSpot leaves rep, amount and channel to CRM entity state, and its events say so.
    assert {v.get("attribution") for v in values} == {"crm_entity" if vendor == "hubspot" else None}


async def test_vendor_fields_survive_the_trip(hooks: Harness) -> None:
    start = await hooks.mark()
    for d in (
        sign("twilio", fixture("twilio_outbound_completed.form"), hooks.t.slug, hooks.keys),
        sign("salesforce", fixture("salesforce_opportunities.xml"), hooks.t.slug, hooks.keys),
        sign("sendgrid", fixture("sendgrid_events.json"), hooks.t.slug, hooks.keys),
        sign("stripe", fixture("stripe_subscription_updated.json"), hooks.t.slug, hooks.keys),
    ):
        assert (await hooks.send(d)).status_code in (200, 202)
    by_id = {v["event_id"]: v for v in await hooks.produced_since(start)}
    call = by_id["twilio:CA5e1c1f31e1c8c7a5b2d3e4f5a6b7c8d9:completed"]
    assert (call["direction"], call["outcome"], call["duration_s"]) == ("outbound", "connected", 312.0)
    assert call["occurred_at"] == "2026-07-07T14:21:40Z"
    won = by_id["salesforce:0065e00000AbCdFAAV:deal.won"]
    assert (won["amount"], won["currency"], won["deal_id"]) == (
        "12500.5",
        hooks.t.currency,
        "0065e00000AbCdFAAV",
    )
    sent = by_id["sendgrid:rbtnWrG1DVDGGGFHFyun0A"]
    assert (sent["rep_id"], sent["contact_id"]) == ("r-dana", "847297356")
    # 12 seats at 49.00 a month and 2,400.00 a year: the subscription's MRR after the event.
    subscription = by_id["stripe:evt_1PqR7sLkdIwHu7ixAbCdEf01"]
    assert (subscription["account_id"], subscription["mrr"], subscription["currency"]) == (
        "cus_QhX4m2LkZ9aB7c",
        "788.0000",
        hooks.t.currency,
    )
    assert (subscription["occurred_at"], subscription["source"]) == ("2026-07-07T15:00:00Z", "stripe")
    assert "attribution" not in subscription


IGNORED = {
    "twilio ringing": ("twilio", "twilio_ringing.form"),
    "aircall call.created": ("aircall", "aircall_call_created.json"),
    "sendgrid delivered only": ("sendgrid", None),
    "stripe invoice.paid": ("stripe", None),
}


NOTHING_TO_MAP = {
    "sendgrid": orjson.dumps([orjson.loads(fixture("sendgrid_events.json"))[1]]),
    "stripe": fixture("stripe_subscription_updated.json").replace(
        b'"customer.subscription.updated"', b'"invoice.paid"'
    ),
}


@pytest.mark.parametrize("case", IGNORED.values(), ids=IGNORED.keys())
async def test_deliveries_that_map_to_nothing_are_acknowledged_and_produce_nothing(
    hooks: Harness, case: tuple[str, str | None]
) -> None:
    vendor, name = case
    payload = fixture(name) if name else NOTHING_TO_MAP[vendor]
    start = await hooks.mark()
    r = await hooks.send(sign(vendor, payload, hooks.t.slug, hooks.keys))
    assert (r.status_code, r.json()) == (202, {"accepted": 0, "ignored": 1})
    assert await hooks.produced_since(start) == []


async def test_salesforce_acknowledges_notifications_it_does_not_map(hooks: Harness) -> None:
    account_only = fixture("salesforce_activities.xml")
    start = await hooks.mark()
    r = await hooks.send(sign("salesforce", account_only, hooks.t.slug, hooks.keys))
    assert r.status_code == 200
    assert r.content == salesforce.ack_response()
    assert len(await hooks.produced_since(start)) == 6  # the Account and the open Task map to nothing


# ---------------------------------------------------------------------------------------------- refused

FIXTURES = {
    "hubspot": "hubspot_deals.json",
    "salesforce": "salesforce_opportunities.xml",
    "twilio": "twilio_outbound_completed.form",
    "aircall": "aircall_call_ended.json",
    "sendgrid": "sendgrid_events.json",
    "stripe": "stripe_subscription_updated.json",
    "fathom": "fathom_new_meeting.json",
}


def _ok(h: Harness, vendor: str, **kw: Any) -> Delivery:
    """The vendor's usual fixture, correctly signed for the harness tenant."""
    return sign(vendor, fixture(FIXTURES[vendor]), h.t.slug, h.keys, **kw)


def _tampered(h: Harness, vendor: str) -> Delivery:
    d = _ok(h, vendor)
    if vendor == "twilio":
        return replace(d, body=d.body.replace(b"CallDuration=312", b"CallDuration=999"))
    changed = d.body.replace(b"891472211", b"891472212").replace(b"r-dana", b"r-mallory")
    return replace(d, body=changed.replace(b'"quantity": 12', b'"quantity": 1200'))


def _without(header: str) -> Callable[[Harness, str], Delivery]:
    def spoil(h: Harness, vendor: str) -> Delivery:
        d = _ok(h, vendor)
        return replace(d, headers={k: v for k, v in d.headers.items() if k != header})

    return spoil


def _without_token(h: Harness, vendor: str) -> Delivery:
    payload = orjson.loads(fixture(FIXTURES[vendor]))
    return replace(_ok(h, vendor), body=orjson.dumps({k: v for k, v in payload.items() if k != "token"}))


WRONG = Secrets(salesforce=_sf_secret("00D5e000000ZZZZEAG"))


def _wrong_secret(h: Harness, vendor: str) -> Delivery:
    return sign(vendor, fixture(FIXTURES[vendor]), h.t.slug, WRONG)


# SendGrid takes a retry signed up to a day and an hour before (services/ingest/sources/sendgrid.py).
STALE = {"sendgrid": timedelta(hours=25, minutes=1)}


def _stale(h: Harness, vendor: str) -> Delivery:
    return _ok(h, vendor, age=STALE.get(vendor, timedelta(minutes=6)))


def _future(h: Harness, vendor: str) -> Delivery:
    return _ok(h, vendor, age=-timedelta(minutes=6))


def _outside_allowed_networks(h: Harness, vendor: str) -> Delivery:
    return sign(vendor, fixture(FIXTURES[vendor]), h.fenced.slug, h.keys)


def _signed_for_public_url(h: Harness, vendor: str) -> Delivery:
    return _ok(h, vendor, base=PUBLIC)


def _legacy_v1(h: Harness, vendor: str) -> Delivery:
    return _legacy(h.t.slug, h.keys)


MISSING = "missing_credentials"
# (vendor, how the delivery is spoiled, the reason code in the answer and in the metric)
REFUSED: dict[str, tuple[str, Callable[[Harness, str], Delivery], str]] = {
    **{f"{v} wrong secret": (v, _wrong_secret, "bad_signature") for v in FIXTURES},
    **{
        f"{v} modified body": (v, _tampered, "bad_signature")
        for v in ("hubspot", "twilio", "sendgrid", "stripe")
    },
    **{f"{v} stale timestamp": (v, _stale, "stale_timestamp") for v in ("hubspot", "sendgrid", "stripe")},
    **{f"{v} future timestamp": (v, _future, "future_timestamp") for v in ("hubspot", "sendgrid", "stripe")},
    "hubspot missing signature": ("hubspot", _without("X-HubSpot-Signature-v3"), MISSING),
    "hubspot missing timestamp": ("hubspot", _without("X-HubSpot-Request-Timestamp"), MISSING),
    "hubspot v1 signature without opt-in": ("hubspot", _legacy_v1, MISSING),
    "twilio missing signature": ("twilio", _without("X-Twilio-Signature"), MISSING),
    "sendgrid missing signature": ("sendgrid", _without("X-Twilio-Email-Event-Webhook-Signature"), MISSING),
    "sendgrid missing timestamp": ("sendgrid", _without("X-Twilio-Email-Event-Webhook-Timestamp"), MISSING),
    "aircall missing token": ("aircall", _without_token, MISSING),
    "stripe missing signature": ("stripe", _without("Stripe-Signature"), MISSING),
    "salesforce sender outside the allowed networks": (
        "salesforce",
        _outside_allowed_networks,
        "address_not_allowed",
    ),
    "twilio signed for the public URL, no base URL set": ("twilio", _signed_for_public_url, "bad_signature"),
}


def _legacy(tenant: str, keys: Secrets) -> Delivery:
    payload = fixture("hubspot_deals.json")
    signature = Signature.get_signature(keys.hubspot, payload.decode(), "v1")
    headers = {
        "content-type": "application/json",
        "X-HubSpot-Signature": signature,
        "X-HubSpot-Signature-Version": "v1",
    }
    return Delivery("hubspot", tenant, payload, headers)


AUTH_FAILURES = "salesloop_ingest_auth_failures_total"


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
async def test_deliveries_that_do_not_verify_are_refused_and_produce_nothing(
    hooks: Harness, case: tuple[str, Callable[[Harness, str], Delivery], str]
) -> None:
    vendor, spoil, code = case
    delivery = spoil(hooks, vendor)
    before = await metric(hooks.direct, AUTH_FAILURES, source=vendor, reason=code)
    start = await hooks.mark()
    r = await hooks.send(delivery)
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "unauthorized"
    assert [d["code"] for d in error["details"]] == [code]
    assert all(d["reason"] for d in error["details"])
    assert await hooks.produced_since(start) == []
    assert await metric(hooks.direct, AUTH_FAILURES, source=vendor, reason=code) == before + 1


@pytest.mark.parametrize("vendor", FIXTURES)
async def test_unknown_tenants_and_missing_secrets_answer_like_a_wrong_secret(
    hooks: Harness, vendor: str
) -> None:
    payload = fixture(FIXTURES[vendor])
    wrong = await hooks.send(sign(vendor, payload, hooks.t.slug, WRONG))
    assert wrong.status_code == 401
    start = await hooks.mark()
    for slug in ("no-such-tenant", hooks.bare.slug, "bad slug!", "nul%00byte", "x" * 300):
        r = await hooks.send(sign(vendor, payload, slug, hooks.keys))
        assert (r.status_code, r.content) == (wrong.status_code, wrong.content), slug
    assert await hooks.produced_since(start) == []


async def test_refusals_of_unknown_tenants_are_counted_as_such(hooks: Harness) -> None:
    before = await metric(hooks.direct, AUTH_FAILURES, source="twilio", reason="unknown_tenant")
    no_secret = await metric(hooks.direct, AUTH_FAILURES, source="twilio", reason="no_secret")
    payload = fixture("twilio_outbound_completed.form")
    assert (await hooks.send(sign("twilio", payload, "no-such-tenant", hooks.keys))).status_code == 401
    assert (await hooks.send(sign("twilio", payload, hooks.bare.slug, hooks.keys))).status_code == 401
    assert await metric(hooks.direct, AUTH_FAILURES, source="twilio", reason="unknown_tenant") == before + 1
    assert await metric(hooks.direct, AUTH_FAILURES, source="twilio", reason="no_secret") == no_secret + 1


def _hubspot_without_subscription(body: bytes) -> bytes:
    items = orjson.loads(body)
    del items[2]["subscriptionType"]
    return orjson.dumps(items)


def _sendgrid_without_timestamp(body: bytes) -> bytes:
    items = orjson.loads(body)
    del items[4]["timestamp"]
    return orjson.dumps(items)


def _aircall_without_call_id(body: bytes) -> bytes:
    payload = orjson.loads(body)
    del payload["data"]["id"]
    return orjson.dumps(payload)


def _twilio_without_call_sid(body: bytes) -> bytes:
    return urlencode([(k, v) for k, v in parse_qsl(body.decode()) if k != "CallSid"]).encode()


def _salesforce_without_notification_id(body: bytes) -> bytes:
    return body.replace(b"<Id>04l5e00000Gx7R0AAJ</Id>", b"")


# (vendor, fixture, how the payload is broken, the field named, the index within the vendor batch)
INVALID: dict[str, tuple[str, str, Callable[[bytes], bytes], str | None, int | None]] = {
    "hubspot item without subscriptionType": (
        "hubspot",
        "hubspot_deals.json",
        _hubspot_without_subscription,
        "subscriptionType",
        2,
    ),
    "hubspot body not JSON": ("hubspot", "hubspot_deals.json", lambda b: b"[{not json", None, None),
    "hubspot object, not an array": (
        "hubspot",
        "hubspot_deals.json",
        lambda b: b'{"eventId": 1}',
        None,
        None,
    ),
    "sendgrid event without timestamp": (
        "sendgrid",
        "sendgrid_events.json",
        _sendgrid_without_timestamp,
        "timestamp",
        4,
    ),
    "aircall call.ended without data.id": (
        "aircall",
        "aircall_call_ended.json",
        _aircall_without_call_id,
        "data.id",
        None,
    ),
    "twilio callback without CallSid": (
        "twilio",
        "twilio_outbound_completed.form",
        _twilio_without_call_sid,
        "CallSid",
        None,
    ),
    "salesforce notification without Id": (
        "salesforce",
        "salesforce_opportunities.xml",
        _salesforce_without_notification_id,
        "Notification.Id",
        1,
    ),
    "salesforce entity expansion": (
        "salesforce",
        "salesforce_billion_laughs.xml",
        lambda b: b,
        None,
        None,
    ),
}


@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
async def test_malformed_payloads_answer_422_naming_the_field_and_produce_nothing(
    hooks: Harness, case: tuple[str, str, Callable[[bytes], bytes], str | None, int | None]
) -> None:
    vendor, name, breaks, field_name, index = case
    start = await hooks.mark()
    r = await hooks.send(sign(vendor, breaks(fixture(name)), hooks.t.slug, hooks.keys))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_payload"
    [detail] = error["details"]
    assert (detail["field"], detail.get("index")) == (field_name, index)
    assert detail["reason"]
    assert await hooks.produced_since(start) == []


def _not_taken(vendor: Vendor[Any, Any]) -> str:
    return next(media for media in (JSON, FORM, "text/plain") if media not in vendor.media_types)


# For each vendor a Content-Type it does not take; and one request with none.
WRONG_TYPE = {
    **{f"{v.source.value} as {_not_taken(v)}": (v.source.value, _not_taken(v)) for v in VENDORS},
    "sendgrid without a content type": ("sendgrid", ""),
}


@pytest.mark.parametrize("case", WRONG_TYPE.values(), ids=WRONG_TYPE.keys())
async def test_another_content_type_answers_415(hooks: Harness, case: tuple[str, str]) -> None:
    vendor, content_type = case
    d = sign(vendor, fixture(FIXTURES[vendor]), hooks.t.slug, hooks.keys)
    r = await hooks.send(replace(d, headers={**d.headers, "content-type": content_type}))
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


# ---------------------------------------------------------------------------------------------- proxies


@pytest.mark.parametrize("vendor", ["twilio", "hubspot"])
async def test_behind_a_proxy_the_configured_public_url_is_what_was_signed(
    hooks: Harness, vendor: str
) -> None:
    payload = fixture(FIXTURES[vendor])
    start = await hooks.mark()
    r = await hooks.send(sign(vendor, payload, hooks.t.slug, hooks.keys, base=PUBLIC), hooks.proxied)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] >= 1
    assert len(await hooks.produced_since(start)) == r.json()["accepted"]
    # Signed for the address the request really arrived on: not what the vendor was told to call.
    internal = await hooks.send(sign(vendor, payload, hooks.t.slug, hooks.keys, base=DIRECT), hooks.proxied)
    assert internal.status_code == 401
    assert internal.json()["error"]["details"][0]["code"] == "bad_signature"


async def test_without_a_base_url_the_port_of_the_request_counts(hooks: Harness) -> None:
    payload = fixture("twilio_outbound_completed.form")
    other_port = sign("twilio", payload, hooks.t.slug, hooks.keys, base="http://127.0.0.1:8002")
    assert (await hooks.send(other_port)).status_code == 401
    assert (await hooks.send(sign("twilio", payload, hooks.t.slug, hooks.keys))).status_code == 202


async def test_stripe_accepts_a_delivery_whose_v1_signatures_include_one_that_matches(
    hooks: Harness,
) -> None:
    # While an endpoint's secret is rolled, Stripe signs with the old and the new one.
    d = _ok(hooks, "stripe")
    timestamp, good = d.headers["Stripe-Signature"].split(",")
    rolled = _wrong_secret(hooks, "stripe").headers["Stripe-Signature"].split(",")[1]
    start = await hooks.mark()
    both = replace(d, headers={**d.headers, "Stripe-Signature": f"{timestamp},{rolled},{good}"})
    r = await hooks.send(both)
    assert (r.status_code, r.json()) == (202, {"accepted": 1, "ignored": 0})
    assert [v["event_id"] for v in await hooks.produced_since(start)] == [
        "stripe:evt_1PqR7sLkdIwHu7ixAbCdEf01"
    ]
    only_rolled = replace(d, headers={**d.headers, "Stripe-Signature": f"{timestamp},{rolled}"})
    assert (await hooks.send(only_rolled)).status_code == 401


async def test_a_sendgrid_retry_signed_a_day_ago_is_accepted_and_names_the_same_events(
    hooks: Harness,
) -> None:
    # SendGrid retries for up to 24 hours; a retry may carry its first attempt's signature.
    payload, want = fixture("sendgrid_events.json"), mapped("sendgrid_events.json")
    start = await hooks.mark()
    first = await hooks.send(sign("sendgrid", payload, hooks.t.slug, hooks.keys))
    retry = await hooks.send(sign("sendgrid", payload, hooks.t.slug, hooks.keys, age=timedelta(hours=24)))
    answer = (202, {"accepted": len(want.events), "ignored": want.ignored})
    assert [(r.status_code, r.json()) for r in (first, retry)] == [answer, answer]
    # The same ids twice: the aggregator's archive keeps one event per id and tenant.
    ids = [e.event.event_id for e in want.events]
    assert [v["event_id"] for v in await hooks.produced_since(start)] == ids + ids


SENDGRID_UNCOUNTED = {
    # The object SendGrid's libraries sign in their tests: not an array, an event type not counted.
    "one object": b'{"category":"example_payload","event":"test_event","message_id":"message_id"}',
    "blocked": orjson.dumps(
        [{**orjson.loads(fixture("sendgrid_events.json"))[5], "type": "blocked", "sg_event_id": "blocked-1"}]
    ),
}


@pytest.mark.parametrize("payload", SENDGRID_UNCOUNTED.values(), ids=SENDGRID_UNCOUNTED.keys())
async def test_sendgrid_deliveries_that_count_nothing_are_acknowledged(
    hooks: Harness, payload: bytes
) -> None:
    start = await hooks.mark()
    r = await hooks.send(sign("sendgrid", payload, hooks.t.slug, hooks.keys))
    assert (r.status_code, r.json()) == (202, {"accepted": 0, "ignored": 1})
    assert await hooks.produced_since(start) == []


# ---------------------------------------------------------------------------------------------- options


def _deal_stage(stage: str, event_id: int) -> bytes:
    item = orjson.loads(fixture("hubspot_deals.json"))[4]
    return orjson.dumps([{**item, "eventId": event_id, "propertyValue": stage}])


async def test_hubspot_won_and_lost_stages_and_legacy_signatures_follow_the_tenant_options(
    hooks: Harness,
) -> None:
    custom, keys = hooks.custom.slug, hooks.custom_keys
    start = await hooks.mark()
    for stage, event_id in [("contractsigned", 1), ("closedwon", 2), ("churned", 3)]:
        r = await hooks.send(sign("hubspot", _deal_stage(stage, event_id), custom, keys))
        assert r.json() == {"accepted": 1, "ignored": 0}
    # The default tenant: closedwon means won, the others are stage changes.
    assert (
        await hooks.send(sign("hubspot", _deal_stage("contractsigned", 4), hooks.t.slug, hooks.keys))
    ).is_success
    assert (await hooks.send(_legacy(custom, keys))).status_code == 202
    values = await hooks.produced_since(start)
    assert [(v["tenant"], v["type"], v["stage"]) for v in values[:4]] == [
        (custom, "deal.won", "contractsigned"),
        (custom, "deal.stage_changed", "closedwon"),
        (custom, "deal.lost", "churned"),
        (hooks.t.slug, "deal.stage_changed", "contractsigned"),
    ]
    assert [v["type"] for v in values[4:]] == [
        "deal.created",
        "deal.stage_changed",
        "deal.stage_changed",  # closedwon: not a won stage for this tenant
        "deal.lost",
        "deal.created",
        "lead.qualified",
    ]


async def test_salesforce_statuses_channels_and_networks_follow_the_tenant_options(hooks: Harness) -> None:
    start = await hooks.mark()
    r = await hooks.send(
        sign("salesforce", fixture("salesforce_leads.xml"), hooks.custom.slug, hooks.custom_keys)
    )
    assert r.status_code == 200, r.text  # from 127.0.0.1, inside the tenant's 127.0.0.0/8
    by_id = {v["event_id"]: v for v in await hooks.produced_since(start)}
    assert by_id["salesforce:00Q5e00000LeAd1EAB:lead.qualified:mql"]["stage"] == "mql"
    assert by_id["salesforce:00Q5e00000LeAd1EAB:lead.created"]["channel"] == "paid_social"
    assert "salesforce:00Q5e00000LeAd2EAB:lead.qualified:mql" not in by_id  # "Marketing Qualified" replaced


# ---------------------------------------------------------------------------------------------- limits


async def test_over_the_rate_limit_a_delivery_answers_429_and_produces_nothing(
    stack: Stack, hooks: Harness
) -> None:
    app = create_app(hooks.topic.settings)
    app.state.rate_limiter = RateLimiter(events_per_s=0.01, burst=1)
    start = await hooks.mark()
    async with served(app, DIRECT) as client:
        first = await hooks.send(_ok(hooks, "twilio"), client)
        assert first.status_code == 202, first.text
        for vendor in ("twilio", "salesforce"):
            r = await hooks.send(_ok(hooks, vendor), client)
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "rate_limited"
            assert int(r.headers["Retry-After"]) > 0
        # A delivery that maps to nothing takes nothing from the budget.
        ringing = sign("twilio", fixture("twilio_ringing.form"), hooks.t.slug, hooks.keys)
        assert (await hooks.send(ringing, client)).status_code == 202
    assert [v["event_id"] for v in await hooks.produced_since(start)] == [
        "twilio:CA5e1c1f31e1c8c7a5b2d3e4f5a6b7c8d9:completed"
    ]


# ---------------------------------------------------------------------------------------------- broker down


async def test_a_broker_that_does_not_acknowledge_answers_503_not_the_salesforce_ack(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory
) -> None:
    keys = Secrets()
    t = await _tenant_with(tenants, engine, keys)
    app = create_app(stack.settings(kafka_bootstrap=f"127.0.0.1:{free_port()}", produce_timeout_s=0.5))
    async with served(app, DIRECT) as client:
        for vendor in ("salesforce", "twilio"):
            d = sign(vendor, fixture(FIXTURES[vendor]), t.slug, keys)
            r = await client.post(d.path, content=d.body, headers=d.headers)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "broker_unavailable"
            assert int(r.headers["Retry-After"]) > 0
        # Nothing to publish needs no broker: an ignored callback is still acknowledged.
        d = sign("twilio", fixture("twilio_ringing.form"), t.slug, keys)
        r = await client.post(d.path, content=d.body, headers=d.headers)
        assert (r.status_code, r.json()) == (202, {"accepted": 0, "ignored": 1})


async def test_openapi_documents_the_vendor_routes_and_request_metrics_use_their_templates(
    hooks: Harness,
) -> None:
    paths = (await hooks.direct.get("/openapi.json")).json()["paths"]
    for vendor in FIXTURES:
        post = paths[f"/webhooks/{vendor}/{{tenant}}"]["post"]
        assert {"401", "415", "422", "503"} <= set(post["responses"])
    route = {"route": "/webhooks/aircall/{tenant}", "method": "POST", "status": "202"}
    before = await metric(hooks.direct, "salesloop_ingest_requests_total", **route)
    d = sign("aircall", fixture("aircall_call_missed_voicemail.json"), hooks.t.slug, hooks.keys)
    assert (await hooks.send(d)).status_code == 202
    assert await metric(hooks.direct, "salesloop_ingest_requests_total", **route) == before + 1
