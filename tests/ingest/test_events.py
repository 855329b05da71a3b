"""`POST /v1/events/{tenant}` in-process against the session's real broker and Postgres.

Requests are bracketed by sentinel events on a one-partition topic: what lies between the sentinels
is exactly what the request produced (nothing, for a rejected one). Offsets are learnt by consuming,
because the embedded broker under-reports the end offset after a multi-record batch.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from services.core.tenancy import create_key
from services.ingest.app import create_app
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory
from tests.ingest.harness import Record, Topic, one_partition_topic, samples, served

MAX_BODY = 128 * 1024
BODY_READ_TIMEOUT_S = 0.5
JSON = {"content-type": "application/json"}
EVENT: dict[str, Any] = {
    "event_id": "call-1",
    "type": "call.completed",
    "occurred_at": "2026-10-05T10:00:00+02:00",
    "rep_id": "r1",
    "contact_id": "c1",
    "direction": "outbound",
    "outcome": "connected",
    "duration_s": 312.5,
}


@dataclass
class Harness:
    client: httpx.AsyncClient
    topic: Topic
    t: TenantCtx
    other: TenantCtx
    no_scope_key: str
    cursor: int = 0

    def key(self, key: str | None = None) -> dict[str, str]:
        return {**JSON, "Authorization": f"Bearer {key or self.t.ingest_key}"}

    async def post(self, body: Any, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.client.post(f"/v1/events/{self.t.slug}", content=content, headers=headers, **kw)

    async def produced_since(self, start: int, timeout_s: float = 10.0) -> list[Record]:
        """Every record from offset `start` up to a sentinel event posted now (the sentinel excluded).

        The broker acknowledged each earlier request before it was answered, so anything those
        requests produced sits before the sentinel on the topic's single partition.
        """
        sentinel = {**EVENT, "event_id": f"sentinel-{secrets.token_hex(6)}"}
        r = await self.post(sentinel, self.key())
        assert r.status_code == 202, r.text
        *out, last = await self.topic.read_until(sentinel["event_id"], start, timeout_s)
        self.cursor = last.offset + 1
        return out

    async def mark(self) -> int:
        """The offset after which the next request's records will be."""
        await self.produced_since(self.cursor)
        return self.cursor


@pytest.fixture(scope="module")
async def ingest(stack: Stack, engine: AsyncEngine, tenants: TenantFactory) -> AsyncIterator[Harness]:
    async with one_partition_topic(
        stack, "ingest-events", max_body_bytes=MAX_BODY, body_read_timeout_s=BODY_READ_TIMEOUT_S
    ) as topic:
        t, other = await tenants.create(), await tenants.create()
        no_scope_key = await create_key(engine, t.slug, ["metrics:read"])
        async with served(create_app(topic.settings)) as client:
            yield Harness(client, topic, t, other, no_scope_key)


def signed(
    secret: str, body: bytes, *, age: timedelta = timedelta(0), msg_id: str = "msg_1"
) -> dict[str, str]:
    ts = datetime.now(UTC) - age
    return {
        **JSON,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(ts.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, ts, body.decode()),
    }


def header(record: Record, name: str) -> bytes | None:
    return dict(record.headers).get(name)


# ---------------------------------------------------------------------------------------------- accepted


async def test_a_single_event_reaches_the_topic_with_key_header_and_service_fields(ingest: Harness) -> None:
    start = await ingest.mark()
    before = datetime.now(UTC)
    r = await ingest.post(EVENT, ingest.key())
    assert (r.status_code, r.json()) == (202, {"accepted": 1})
    [rec] = await ingest.produced_since(start)
    assert rec.key == f"{ingest.t.slug}:r1".encode()
    assert header(rec, "schema") == b"buyer-event/1"
    value = orjson.loads(rec.value)
    assert value.pop("tenant") == ingest.t.slug
    assert value.pop("source") == "api"
    assert before <= datetime.fromisoformat(value.pop("received_at")) <= datetime.now(UTC)
    assert value.pop("occurred_at") == "2026-10-05T10:00:00+02:00"
    assert value == {k: v for k, v in EVENT.items() if k != "occurred_at"}


async def test_a_batch_is_produced_in_order_with_rep_contact_or_dash_keys(ingest: Harness) -> None:
    events = [
        {**EVENT, "event_id": "b-1"},
        {
            "event_id": "b-2",
            "type": "lead.created",
            "occurred_at": "2026-10-05T08:00:00Z",
            "contact_id": "c9",
        },
        {"event_id": "b-3", "type": "deal.won", "occurred_at": "2026-10-05T08:00:00Z", "amount": 1200.5},
        {
            "event_id": "b-4",
            "type": "training.certification",
            "occurred_at": "2026-10-05T08:00:00Z",
            "rep_id": "r2",
            "module": "discovery",
            "score": 88,
            "passed": True,
        },
    ]
    start = await ingest.mark()
    r = await ingest.post({"events": events}, ingest.key())
    assert (r.status_code, r.json()) == (202, {"accepted": 4})
    records = await ingest.produced_since(start)
    slug = ingest.t.slug
    assert [rec.key for rec in records] == [f"{slug}:{k}".encode() for k in ("r1", "c9", "-", "r2")]
    values = [orjson.loads(rec.value) for rec in records]
    assert [v["event_id"] for v in values] == ["b-1", "b-2", "b-3", "b-4"]
    assert all(header(rec, "schema") == b"buyer-event/1" for rec in records)
    assert {(v["tenant"], v["source"]) for v in values} == {(slug, "api")}
    assert len({v["received_at"] for v in values}) == 1
    assert values[2]["amount"] == "1200.5"


async def test_v2_events_reach_the_topic_with_amounts_as_decimal_strings(ingest: Harness) -> None:
    at = "2026-10-05T08:00:00Z"
    events = [
        {
            "event_id": "v2-1",
            "type": "subscription.started",
            "occurred_at": at,
            "account_id": "a1",
            "mrr": 99.5,
        },
        {
            "event_id": "v2-2",
            "type": "call.transcribed",
            "occurred_at": at,
            "call_event_id": "call-1",
            "transcript": [{"speaker": "buyer", "start_s": 0, "end_s": 2.5, "text": "hello"}],
        },
        {
            "event_id": "v2-3",
            "type": "deal.updated",
            "occurred_at": at,
            "deal_id": "d1",
            "close_date": "2026-12-31",
            "forecast_category": "commit",
        },
    ]
    start = await ingest.mark()
    r = await ingest.post({"events": events}, ingest.key())
    assert (r.status_code, r.json()) == (202, {"accepted": 3})
    values = [orjson.loads(rec.value) for rec in await ingest.produced_since(start)]
    for value in values:
        del value["tenant"], value["source"], value["received_at"]
    assert values == [{**events[0], "mrr": "99.5"}, events[1], events[2]]


async def test_admin_keys_and_json_with_charset_are_accepted(ingest: Harness) -> None:
    headers = {**ingest.key(ingest.t.api_key), "content-type": "application/json; charset=utf-8"}
    start = await ingest.mark()
    r = await ingest.post({**EVENT, "event_id": "admin-1"}, headers)
    assert r.status_code == 202, r.text
    assert [orjson.loads(rec.value)["event_id"] for rec in await ingest.produced_since(start)] == ["admin-1"]


async def test_a_standard_webhooks_signature_is_accepted(ingest: Harness) -> None:
    body = orjson.dumps({"events": [{**EVENT, "event_id": "signed-1"}, {**EVENT, "event_id": "signed-2"}]})
    start = await ingest.mark()
    r = await ingest.post(body, signed(ingest.t.webhook_secret, body))
    assert (r.status_code, r.json()) == (202, {"accepted": 2})
    records = await ingest.produced_since(start)
    assert [orjson.loads(rec.value)["event_id"] for rec in records] == ["signed-1", "signed-2"]
    assert {orjson.loads(rec.value)["tenant"] for rec in records} == {ingest.t.slug}


# ---------------------------------------------------------------------------------------------- rejected

KEY = "key"
ANY = object()  # the field named in details is not checked (no details for this error)
FUTURE = (datetime.now(UTC) + timedelta(hours=25)).isoformat()
BIG_ATTRIBUTES = {"notes": "x" * (16 * 1024)}
DEEP: dict[str, Any] = {}
_node = DEEP
for _ in range(40):
    _node["a"] = {}
    _node = _node["a"]


def nested(levels: int) -> dict[str, Any]:
    """`levels` objects, each inside the one before, around a number: one level over the limit at 33."""
    node: Any = 1
    for _ in range(levels):
        node = {"a": node}
    return node


def ev(**changes: Any) -> dict[str, Any]:
    out = {**EVENT, **changes}
    return {k: v for k, v in out.items() if v is not None}


def without(*names: str, **changes: Any) -> dict[str, Any]:
    return {k: v for k, v in ev(**changes).items() if k not in names}


@dataclass(frozen=True)
class Bad:
    body: Any
    status: int
    code: str
    field_path: object = ANY
    index: int = 0
    auth: str = KEY
    headers: dict[str, str] = field(default_factory=dict)


def invalid(field_name: str, body: Any, index: int = 0) -> Bad:
    return Bad(body, 422, "invalid_event", field_name, index)


def bad_batch(field_name: str | None, body: Any) -> Bad:
    return Bad(body, 422, "invalid_batch", field_name)


SMALL = {"type": "email.sent", "occurred_at": "2026-10-05T10:00:00Z"}
CERT = {"type": "training.certification", "module": "discovery", "passed": True}
BAD: dict[str, Bad] = {
    "event_id empty": invalid("event_id", ev(event_id="")),
    "event_id 201 chars": invalid("event_id", ev(event_id="e" * 201)),
    "event_id missing": invalid("event_id", without("event_id")),
    "unknown type": invalid("type", ev(type="call.exploded")),
    "occurred_at without offset": invalid("occurred_at", ev(occurred_at="2026-10-05T10:00:00")),
    "occurred_at not a timestamp": invalid("occurred_at", ev(occurred_at="yesterday")),
    "occurred_at > 24h ahead": invalid("occurred_at", ev(occurred_at=FUTURE)),
    "occurred_at before 1900": invalid("occurred_at", ev(occurred_at="1899-12-31T23:00:00Z")),
    "bad channel": invalid("channel", ev(channel="tv")),
    "bad direction": invalid("direction", ev(direction="sideways")),
    "bad outcome": invalid("outcome", ev(outcome="hung_up")),
    "negative duration": invalid("duration_s", ev(duration_s=-1)),
    "negative talk time": invalid("rep_talk_s", ev(rep_talk_s=-0.5)),
    "amount < 0": invalid("amount", ev(type="deal.won", amount=-5)),
    "huge amount": invalid("amount", ev(type="deal.won", amount=1e300)),
    "currency not the tenant's": invalid("currency", ev(type="deal.won", amount=5, currency="EUR")),
    "bad currency format": invalid("currency", ev(type="deal.won", amount=5, currency="usd")),
    "score > 100": invalid("score", ev(**CERT, score=101)),
    "lead.qualified without stage": invalid("stage", ev(type="lead.qualified")),
    "lead.qualified bad stage": invalid("stage", ev(type="lead.qualified", stage="hot")),
    "certification without module": invalid("module", without("module", **CERT)),
    "attributes > 16 KiB": invalid("attributes", ev(attributes=BIG_ATTRIBUTES)),
    "attributes nested too deep": invalid("attributes", ev(attributes=DEEP)),
    "one event of a batch one level too deep": invalid(
        "attributes", {"events": [ev(event_id=f"ok-{i}") for i in range(3)] + [ev(attributes=nested(33))]}, 3
    ),
    "unknown top-level field": invalid("colour", ev(colour="blue")),
    "client-set tenant": invalid("tenant", ev(tenant="someone-else")),
    "client-set source": invalid("source", ev(source="hubspot")),
    "client-set received_at": invalid("received_at", ev(received_at="2026-10-05T10:00:00Z")),
    "event_id not a string": invalid("event_id", ev(event_id=123)),
    "duration not a number": invalid("duration_s", ev(duration_s="long")),
    "attributes not an object": invalid("attributes", ev(attributes=[1, 2])),
    "transcript bad speaker": invalid(
        "transcript.0.speaker",
        ev(transcript=[{"speaker": "narrator", "start_s": 0, "end_s": 1, "text": "hi"}]),
    ),
    "NUL in a string": invalid("rep_id", ev(rep_id="r\x001")),
    # What the aggregator could not fold is refused here, by the same checks (services/core/limits.py).
    "occurred_at in the year 1": invalid("occurred_at", ev(occurred_at="0001-01-01T00:00:00Z")),
    "occurred_at as a Unix time": invalid("occurred_at", ev(occurred_at=1_780_000_000)),
    "duration as a string": invalid("duration_s", ev(duration_s="60")),
    "passed as a string": invalid("passed", ev(**{**CERT, "passed": "yes"})),
    "amount with 5 decimal places": invalid("amount", ev(type="deal.won", amount="1.00001")),
    "subscription without mrr": invalid("mrr", ev(type="subscription.started", account_id="a1")),
    "transcript without its call": invalid("call_event_id", ev(type="call.transcribed", transcript=[])),
    "close_date not a date": invalid("close_date", ev(type="deal.updated", close_date="31/12/2026")),
    "bad forecast category": invalid("forecast_category", ev(type="deal.updated", forecast_category="maybe")),
    "NUL in transcript text": invalid(
        "transcript.0.text", ev(transcript=[{"speaker": "rep", "start_s": 0, "end_s": 1, "text": "a\x00"}])
    ),
    "NUL in an attribute key": invalid("attributes.a", ev(attributes={"a": {"k\x00": 1}})),
    "event not an object": invalid(None, {"events": [EVENT, "call"]}, index=1),
    "only event #3 bad": invalid(
        "event_id", {"events": [ev(event_id=f"ok-{i}") for i in range(3)] + [ev(event_id="")]}, 3
    ),
    "batch of 1001": bad_batch("events", {"events": [SMALL | {"event_id": f"e{i}"} for i in range(1001)]}),
    "empty batch": bad_batch("events", {"events": []}),
    "events not a list": bad_batch("events", {"events": EVENT}),
    "batch with other keys": bad_batch("extra", {"events": [EVENT], "extra": 1}),
    "top level array": bad_batch(None, [EVENT]),
    "not JSON": Bad(b"{not json", 400, "invalid_json", None),
    "invalid UTF-8": Bad(b'{"event_id": "\xff\xfe", "type": "email.sent"}', 400, "invalid_json", None),
    "lone surrogate": Bad(b'{"event_id": "\\ud800"}', 400, "invalid_json", None),
    "number out of range": Bad(b'{"duration_s": 1' + b"0" * 400 + b"}", 400, "invalid_json", None),
    "nested 5000 deep": Bad(b"[" * 5000 + b"]" * 5000, 400, "invalid_json", None),
    "text/plain": Bad(EVENT, 415, "unsupported_media_type", headers={"content-type": "text/plain"}),
    "no content type": Bad(EVENT, 415, "unsupported_media_type", headers={"content-type": ""}),
    "latin-1 charset": Bad(
        EVENT, 415, "unsupported_media_type", headers={"content-type": "application/json; charset=latin-1"}
    ),
    "over-size, honest length": Bad(ev(attributes={"x": "y" * MAX_BODY}), 413, "payload_too_large"),
    "over-size, lying length": Bad(
        ev(attributes={"x": "y" * MAX_BODY}), 413, "payload_too_large", headers={"content-length": "100"}
    ),
    "missing auth": Bad(EVENT, 401, "unauthorized", auth="none"),
    "not a bearer": Bad(EVENT, 401, "unauthorized", auth="basic"),
    "bad key": Bad(EVENT, 401, "unauthorized", auth="bad_key"),
    "another tenant's key": Bad(EVENT, 401, "unauthorized", auth="other_key"),
    "key without ingest scope": Bad(EVENT, 403, "forbidden", auth="no_scope"),
    "webhook wrong secret": Bad(EVENT, 401, "unauthorized", auth="sig_wrong_secret"),
    "webhook modified body": Bad(EVENT, 401, "unauthorized", auth="sig_modified_body"),
    "webhook stale timestamp": Bad(EVENT, 401, "unauthorized", auth="sig_stale"),
    "webhook future timestamp": Bad(EVENT, 401, "unauthorized", auth="sig_future"),
    "webhook missing signature header": Bad(EVENT, 401, "unauthorized", auth="sig_missing_header"),
    "webhook garbage signature": Bad(EVENT, 401, "unauthorized", auth="sig_garbage"),
    "webhook signed by another tenant": Bad(EVENT, 401, "unauthorized", auth="sig_other_tenant"),
}

OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"


def auth_headers(ingest: Harness, auth: str, body: bytes) -> dict[str, str]:
    t = ingest.t
    signers: dict[str, Callable[[], dict[str, str]]] = {
        KEY: lambda: ingest.key(),
        "none": lambda: dict(JSON),
        "basic": lambda: {**JSON, "Authorization": "Basic dXNlcjpwYXNz"},
        "bad_key": lambda: ingest.key("sl_000000000000_" + "A" * 43),
        "other_key": lambda: ingest.key(ingest.other.ingest_key),
        "no_scope": lambda: ingest.key(ingest.no_scope_key),
        "sig_wrong_secret": lambda: signed(OTHER_SECRET, body),
        "sig_modified_body": lambda: signed(t.webhook_secret, body.replace(b"call-1", b"call-2")),
        "sig_stale": lambda: signed(t.webhook_secret, body, age=timedelta(minutes=6)),
        "sig_future": lambda: signed(t.webhook_secret, body, age=-timedelta(minutes=6)),
        "sig_missing_header": lambda: {
            k: v for k, v in signed(t.webhook_secret, body).items() if k != "webhook-signature"
        },
        "sig_garbage": lambda: {**signed(t.webhook_secret, body), "webhook-signature": "v1,not base64!"},
        "sig_other_tenant": lambda: signed(ingest.other.webhook_secret, body),
    }
    return signers[auth]()


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
async def test_bad_requests_are_refused_and_nothing_is_produced(ingest: Harness, case: Bad) -> None:
    body = case.body if isinstance(case.body, bytes) else orjson.dumps(case.body)
    headers = {**auth_headers(ingest, case.auth, body), **case.headers}
    start = await ingest.mark()
    r = await ingest.post(body, {k: v for k, v in headers.items() if v})
    assert r.status_code == case.status, r.text
    error = r.json()["error"]
    assert error["code"] == case.code
    if case.field_path is not ANY:
        assert {"index": case.index, "field": case.field_path} in [
            {"index": d.get("index", 0), "field": d["field"]} for d in error["details"]
        ], error
        assert all(d["reason"] for d in error["details"])
    assert await ingest.produced_since(start) == []


async def test_a_bad_batch_reports_every_bad_field_of_every_event(ingest: Harness) -> None:
    events = [ev(event_id="fine"), ev(event_id="", duration_s=-1), ev(event_id="ok", direction="up")]
    r = await ingest.post({"events": events}, ingest.key())
    assert r.status_code == 422
    details = r.json()["error"]["details"]
    assert sorted((d["index"], d["field"]) for d in details) == [
        (1, "duration_s"),
        (1, "event_id"),
        (2, "direction"),
    ]


async def test_unknown_tenants_and_bad_credentials_answer_the_same_body(ingest: Harness) -> None:
    bad_key = await ingest.client.post(
        f"/v1/events/{ingest.t.slug}", content=orjson.dumps(EVENT), headers=ingest.key("sl_000000000000_x")
    )
    answers = [bad_key]
    for slug in ("no-such-tenant", "bad slug!", "nul%00byte", "x" * 300):
        body = orjson.dumps(EVENT)
        for headers in (ingest.key(), signed(ingest.t.webhook_secret, body)):
            answers.append(await ingest.client.post(f"/v1/events/{slug}", content=body, headers=headers))
    assert {(r.status_code, r.content) for r in answers} == {(bad_key.status_code, bad_key.content)}
    assert bad_key.status_code == 401


async def test_bodies_larger_than_the_limit_are_cut_off_while_streaming(ingest: Harness) -> None:
    sent = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"event_id": "big", "attributes": {"x": "'
        for _ in range(800):
            sent += 64 * 1024
            yield b"y" * (64 * 1024)
        yield b'"}}'

    start = await ingest.mark()
    r = await ingest.client.post(
        f"/v1/events/{ingest.t.slug}", content=fifty_megabytes(), headers=ingest.key()
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert sent <= MAX_BODY + 64 * 1024
    assert await ingest.produced_since(start) == []


async def test_a_body_that_stalls_answers_408_within_the_read_timeout(ingest: Harness) -> None:
    stalled = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"event_id": "slow", '
        await stalled.wait()  # never set: the sender stops sending
        yield b"}"

    started = time.monotonic()
    r = await ingest.client.post(f"/v1/events/{ingest.t.slug}", content=stalls(), headers=ingest.key())
    assert r.status_code == 408
    assert r.json()["error"]["code"] == "request_timeout"
    assert time.monotonic() - started < BODY_READ_TIMEOUT_S + 2.0


# ---------------------------------------------------------------------------------------------- operations


async def test_health_readiness_and_metrics(ingest: Harness) -> None:
    assert (await ingest.client.get("/healthz")).status_code == 200
    assert (await ingest.client.get("/readyz")).status_code == 200
    openapi = (await ingest.client.get("/openapi.json")).json()
    assert "422" in openapi["paths"]["/v1/events/{tenant}"]["post"]["responses"]

    before = (await ingest.client.get("/metrics")).text
    assert (await ingest.post({**EVENT, "event_id": "m-1"}, ingest.key())).status_code == 202
    assert (await ingest.post(EVENT, ingest.key("sl_000000000000_x"))).status_code == 401
    assert (await ingest.post(ev(duration_s=-1), ingest.key())).status_code == 422
    r = await ingest.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    after = r.text

    def delta(name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        return samples(after, name).get(key, 0.0) - samples(before, name).get(key, 0.0)

    assert delta("salesloop_ingest_events_accepted_total", source="api") == 1
    assert delta("salesloop_ingest_auth_failures_total", source="api", reason="unknown_key") == 1
    assert delta("salesloop_ingest_events_rejected_total", source="api", reason="invalid") == 1
    assert delta("salesloop_ingest_requests_rejected_total", source="api", reason="invalid_event") == 1
    assert delta("salesloop_ingest_produce_duration_seconds_count", source="api", outcome="acked") == 1
    assert delta("salesloop_ingest_request_body_bytes_count", source="api") == 2
    assert delta("salesloop_ingest_request_events_count", source="api") == 1
    route = {"route": "/v1/events/{tenant}", "method": "POST"}
    assert delta("salesloop_ingest_requests_total", **route, status="202") == 1
    assert delta("salesloop_ingest_request_duration_seconds_count", **route) == 3
    bounded = {"source", "reason", "outcome", "route", "method", "status", "le"}
    for family in text_string_to_metric_families(after):
        if family.name.startswith("salesloop_ingest_"):
            assert all(set(s.labels) <= bounded for s in family.samples), family.name
