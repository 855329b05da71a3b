"""Hostile input through the real processes: every request gets a 4xx or a correct 2xx, never a 5xx, and a
refused request leaves the stored numbers exactly as they were."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import ServiceProcess, free_port
from tests.conftest import Services, Stack
from tests.factories import TenantCtx, TenantFactory

BASE: dict[str, Any] = {"type": "call.completed", "occurred_at": "2026-10-05T10:00:00+02:00", "rep_id": "r1"}
SQL = "x'); DROP TABLE events; --"
RESET = 0  # raw_request's status when the server dropped the connection instead of answering
NESTED: dict[str, Any] = {}
_node = NESTED
for _ in range(40):
    _node["a"] = {}
    _node = _node["a"]


def ev(event_id: str, **fields: Any) -> dict[str, Any]:
    return {**BASE, "event_id": event_id, **fields}


def raw_event(event_id: str, tail: bytes) -> bytes:
    """An event whose last field is written by hand (what a JSON encoder would refuse to write)."""
    return orjson.dumps(ev(event_id))[:-1] + b"," + tail + b"}"


# name -> (body, status). Every body is refused as a whole.
REFUSED: dict[str, tuple[bytes | dict[str, Any], int]] = {
    "attributes nested 40 deep": (ev("h-deep", attributes=NESTED), 422),
    "brackets nested 100 000 deep": (b"[" * 100_000 + b"]" * 100_000, 400),
    "duration 1e309": (raw_event("h-inf", b'"duration_s": 1e309'), 400),
    "duration -1e309": (raw_event("h-ninf", b'"duration_s": -1e309'), 400),
    "duration 10**400": (raw_event("h-bigint", b'"duration_s": 1' + b"0" * 400), 400),
    "amount 10**400 as text": (ev("h-bigamount", type="deal.won", amount="1" + "0" * 400), 422),
    "amount just over 1e15": (ev("h-over", type="deal.won", amount="1000000000000000.0001"), 422),
    "amount NaN": (ev("h-nan", type="deal.won", amount="NaN"), 422),
    "score Infinity": (raw_event("h-infscore", b'"score": Infinity'), 400),
    "invalid UTF-8": (b'{"event_id": "\xc3\x28", "type": "email.sent"}', 400),
    "overlong UTF-8 slash": (b'{"event_id": "\xc0\xaf", "type": "email.sent"}', 400),
    "lone surrogate": (raw_event("h-sur", b'"contact_id": "\\udc00"'), 400),
    "raw NUL byte in a string": (raw_event("h-nulraw", b'"contact_id": "a\x00b"'), 400),
    "escaped NUL in an id": (ev("h-nul\u0000"), 422),
    "escaped NUL deep in attributes": (ev("h-nulattr", attributes={"k": ["ok", {"v": "a\u0000"}]}), 422),
    "10 000-char event_id": (ev("e" * 10_000), 422),
    "10 000-char rep_id": (ev("h-longrep", rep_id="r" * 10_000), 422),
    "10 000-char stage": (ev("h-longstage", type="deal.stage_changed", stage="s" * 10_000), 422),
    "timestamp on a day that does not exist": (ev("h-feb30", occurred_at="2026-02-30T10:00:00Z"), 422),
    "2026-02-29 (not a leap year)": (ev("h-feb29", occurred_at="2026-02-29T10:00:00Z"), 422),
    "2028-02-29 (a leap day, but > 24 h ahead)": (ev("h-2028", occurred_at="2028-02-29T12:00:00Z"), 422),
    "offset of 24 hours": (ev("h-off", occurred_at="2026-10-05T10:00:00+24:00"), 422),
    "year 0001": (ev("h-y1", occurred_at="0001-01-01T00:00:00+14:00"), 422),
    "year 9999 at the edge": (ev("h-y9999", occurred_at="9999-12-31T23:59:59-14:00"), 422),
    "a batch with one bad event": ({"events": [ev("h-b1"), ev("h-b2", duration_s=-1)]}, 422),
    "SQL in the type": (ev("h-sqltype", type=SQL), 422),
}

# name -> event; each is accepted (202) and must be counted exactly as written.
ACCEPTED: dict[str, bytes | dict[str, Any]] = {
    "SQL in every id": ev(SQL, rep_id=f"r1{SQL}", contact_id=SQL, account_id=SQL, deal_id=SQL),
    "SQL and markup in attributes": ev("h-attr", attributes={SQL: "<script>alert(1)</script>", "n": 1e-400}),
    "header injection text in an id": ev("h-crlf\r\nSet-Cookie: pwned=1", rep_id="r1"),
    "duration 1e-400 (zero)": raw_event("h-tiny", b'"outcome": "connected", "duration_s": 1e-400'),
    "amount exactly 1e15": ev("h-max", type="deal.won", amount="1000000000000000", rep_id="r-money"),
    "amount with four decimals": ev("h-dec", type="deal.won", amount="0.0001", rep_id="r-money"),
    "200-char ids": ev("i" * 200, rep_id="r" * 200, contact_id="c" * 200),
    "unicode ids": ev("h-\u00e9\u6f22\U0001f600", rep_id="r-\u00e9"),
}


async def post(client: httpx.AsyncClient, t: TenantCtx, body: bytes | dict[str, Any]) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"content-type": "application/json", "Authorization": f"Bearer {t.ingest_key}"}
    return await client.post(f"/v1/events/{t.slug}", content=content, headers=headers)


async def archived(engine: AsyncEngine, tenant: str) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT event_id FROM events WHERE tenant = :t"), {"t": tenant})
        return {r.event_id for r in rows}


async def wait_archived(engine: AsyncEngine, tenant: str, event_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while event_id not in await archived(engine, tenant):
        assert time.monotonic() < deadline, f"{event_id} not folded after {timeout_s} s"
        await asyncio.sleep(0.1)


async def rep_days(engine: AsyncEngine, tenant: str) -> dict[tuple[str, date], dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM rollup_rep_daily WHERE tenant = :t"), {"t": tenant})
        return {(r["rep_id"], r["day"]): dict(r) for r in rows.mappings()}


async def test_hostile_bodies_get_a_4xx_and_change_nothing_valid_ones_are_counted_as_written(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create(timezone="Europe/Berlin")
    problems = []
    async with httpx.AsyncClient(base_url=services.ingest_url, timeout=30) as client:
        for name, (body, status) in REFUSED.items():
            r = await post(client, t, body)
            if r.status_code != status or "error" not in r.json():
                problems.append((name, r.status_code, r.text[:200]))
        for name, event in ACCEPTED.items():
            r = await post(client, t, event)
            if r.status_code != 202:
                problems.append((name, r.status_code, r.text[:200]))
        assert (await post(client, t, ev("last"))).status_code == 202
    assert problems == []

    await wait_archived(engine, t.slug, "last")
    # Exactly the accepted events, with their ids byte for byte; nothing of any refused body.
    accepted = {
        orjson.loads(e)["event_id"] if isinstance(e, bytes) else e["event_id"] for e in ACCEPTED.values()
    }
    assert await archived(engine, t.slug) == accepted | {"last"}
    async with engine.connect() as conn:
        folded = await conn.scalar(
            text("SELECT events_folded FROM tenant_watermarks WHERE tenant = :t"), {"t": t.slug}
        )
        payload = await conn.scalar(
            text("SELECT payload FROM events WHERE tenant = :t AND event_id = :e"), {"t": t.slug, "e": SQL}
        )
    assert folded == len(ACCEPTED) + 1
    assert payload["deal_id"] == SQL
    days = await rep_days(engine, t.slug)
    assert days[("r-money", date(2026, 10, 5))]["revenue_won"] == Decimal("1000000000000000.0001")
    assert days[(f"r1{SQL}", date(2026, 10, 5))]["calls"] == 1
    assert days[("r1", date(2026, 10, 5))]["talk_time_s"] == 0  # 1e-400 s is zero, not an error


async def test_dst_changes_and_leap_days_land_on_the_local_day(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create(timezone="Europe/Berlin")
    async with httpx.AsyncClient(base_url=services.api_url) as api:
        r = await api.put(
            "/v1/reps/ny",
            json={"timezone": "America/New_York"},
            headers={"Authorization": f"Bearer {t.api_key}"},
        )
        assert r.status_code == 201, r.text
    # (event time, rep) -> the rep-local day it belongs to, worked out by hand.
    cases = {
        ("2026-03-28T22:59:59Z", "ber"): date(2026, 3, 28),  # 23:59:59 CET
        ("2026-03-28T23:00:00Z", "ber"): date(2026, 3, 29),  # 00:00 CET, the day clocks go forward
        ("2026-03-29T03:30:00+02:00", "ber"): date(2026, 3, 29),  # just after the gap
        ("2026-10-25T02:30:00+02:00", "ber"): date(2026, 10, 25),  # 02:30 happens twice: first
        ("2026-10-25T02:30:00+01:00", "ber"): date(2026, 10, 25),  # and second time
        ("2026-10-25T22:59:59Z", "ber"): date(2026, 10, 25),  # 23:59:59 CET of the 25-hour day
        ("2026-10-25T23:00:00Z", "ber"): date(2026, 10, 26),
        ("2024-02-29T23:30:00-05:00", "ny"): date(2024, 2, 29),  # already 1 March in UTC
        ("2024-03-01T04:59:59Z", "ny"): date(2024, 2, 29),
        ("2024-02-29T00:00:00+14:00", "ny"): date(2024, 2, 28),  # still 28 Feb in New York
        ("2026-03-08T06:59:59Z", "ny"): date(2026, 3, 8),  # US clocks go forward at 07:00 UTC
        ("2026-11-01T05:30:00Z", "ny"): date(2026, 11, 1),  # 01:30 EDT, repeated an hour later
        ("2026-11-01T06:30:00Z", "ny"): date(2026, 11, 1),  # 01:30 EST
    }
    events = [
        ev(f"dst-{i}", occurred_at=stamp, rep_id=rep, type="email.sent")
        for i, (stamp, rep) in enumerate(cases)
    ]
    async with httpx.AsyncClient(base_url=services.ingest_url) as client:
        r = await post(client, t, {"events": events})
        assert r.status_code == 202, r.text
    await wait_archived(engine, t.slug, f"dst-{len(events) - 1}")
    want: dict[tuple[str, date], int] = {}
    for (_, rep), day in cases.items():
        want[(rep, day)] = want.get((rep, day), 0) + 1
    days = await rep_days(engine, t.slug)
    assert {key: row["emails_sent"] for key, row in days.items()} == want


async def test_injection_in_paths_and_headers_is_refused_and_never_reflected(
    services: Services, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    body = orjson.dumps(ev("inj-1"))
    key = {"content-type": "application/json", "Authorization": f"Bearer {t.ingest_key}"}
    async with httpx.AsyncClient(base_url=services.ingest_url) as ingest:
        for slug in (f"{t.slug}' OR '1'='1", quote(f"{t.slug}\r\nSet-Cookie: pwned=1"), "x" * 10_000):
            r = await ingest.post(f"/v1/events/{slug}", content=body, headers=key)
            assert r.status_code == 401, (slug[:40], r.status_code)
            assert "set-cookie" not in r.headers
        for value in (f"Bearer {'A' * 10_000}".encode(), f"Bearer {SQL}".encode(), "Bearer \u00e9".encode()):
            headers: dict[str, str | bytes] = {**key, "Authorization": value}
            r = await ingest.post(f"/v1/events/{t.slug}", content=body, headers=headers)
            assert r.status_code == 401
        signed = {**key, "webhook-id": SQL, "webhook-timestamp": "1e309", "webhook-signature": "v1," + SQL}
        del signed["Authorization"]
        assert (await ingest.post(f"/v1/events/{t.slug}", content=body, headers=signed)).status_code == 401
    # Bytes no HTTP client library would send: a NUL and a bare CR inside header values.
    for header in (b"Authorization: Bearer a\x00b", b"webhook-id: a\rSet-Cookie: x"):
        status, headers, _ = await raw_request(
            services.ingest_port, b"POST /v1/events/" + t.slug.encode(), [header], body
        )
        assert status == RESET or 400 <= status < 500, (header, status)
        assert b"set-cookie" not in headers.lower()
    async with httpx.AsyncClient(base_url=services.api_url) as api:
        auth = {"Authorization": f"Bearer {t.api_key}"}
        for rep in (SQL, "r1' OR '1'='1", "../../etc/passwd", "%00"):
            r = await api.get(f"/v1/reps/{quote(rep, safe='')}/metrics", headers=auth)
            assert r.status_code in (200, 404, 422), (rep, r.status_code, r.text)
        r = await api.get("/v1/reps", params={"team": SQL}, headers=auth)
        assert (r.status_code, r.json()["reps"]) == (200, [])


async def raw_request(
    port: int, request_line: bytes, headers: list[bytes], body: bytes, trickle_s: float | None = None
) -> tuple[int, bytes, bytes]:
    """One HTTP/1.1 request over a plain socket; `trickle_s` sends the body a byte at a time.

    Returns (status, headers, body), or RESET when the server dropped the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [request_line + b" HTTP/1.1", b"Host: 127.0.0.1", b"Content-Type: application/json"]
        head += [*headers, b"Content-Length: %d" % len(body), b"Connection: close", b"", b""]
        writer.write(b"\r\n".join(head))
        answered = asyncio.create_task(reader.read())
        if trickle_s is None:
            writer.write(body)
        else:
            for i in range(len(body)):
                if answered.done():
                    break
                writer.write(body[i : i + 1])
                await writer.drain()
                await asyncio.wait([answered], timeout=trickle_s)
        await writer.drain()
        answer = await asyncio.wait_for(answered, 10)
    except ConnectionResetError:
        return RESET, b"", b""  # the server refused the request outright and dropped the connection
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    response_headers, _, response_body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), response_headers, response_body


async def test_a_slow_body_is_cut_off_at_the_read_timeout_and_others_are_served_meanwhile(
    stack: Stack, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    port = free_port()
    ingest = ServiceProcess(
        "ingest-slow",
        ["ingest", "--port", str(port)],
        {**stack.env, "SALESLOOP_BODY_READ_TIMEOUT_S": "1"},
        f"http://127.0.0.1:{port}/healthz",
        stack.root / f"ingest-slow-{port}.log",
    )
    ingest.start()
    try:
        body = orjson.dumps(ev(f"slow-{secrets.token_hex(3)}"))
        auth = [b"Authorization: Bearer " + t.ingest_key.encode()]
        started = time.monotonic()
        slow = asyncio.create_task(
            raw_request(port, b"POST /v1/events/" + t.slug.encode(), auth, body, trickle_s=0.2)
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(3):  # the trickling sender holds no one else up
                assert (await client.get("/healthz", timeout=0.5)).status_code == 200
        status, _, answer = await slow
        assert status == 408, answer
        assert orjson.loads(answer)["error"]["code"] == "request_timeout"
        assert time.monotonic() - started < 1 + 2.5
    finally:
        ingest.stop()


async def test_a_request_refused_before_its_body_came_is_answered_with_connection_close(
    services: Services, tenants: TenantFactory
) -> None:
    """The server ends a connection whose request it answered unread; the answer must say so, or a
    keep-alive client sends its next request into the closed connection."""
    t = await tenants.create()
    body = orjson.dumps(ev("unread-1"))
    reader, writer = await asyncio.open_connection("127.0.0.1", services.ingest_port)
    try:
        head = [b"POST /v1/events/" + t.slug.encode() + b" HTTP/1.1", b"Host: 127.0.0.1"]
        head += [b"Content-Type: application/json", b"Authorization: Bearer wrong"]
        writer.write(b"\r\n".join([*head, b"Content-Length: %d" % len(body), b"", b""]))
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)  # the body is not sent yet
        writer.write(body)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b"connection: close" in answer.lower(), answer
