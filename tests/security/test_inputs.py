"""Client input never gets a 5xx and is never silently lost: rep fields and ids, vendor rep identities,
timezones PostgreSQL does not know, tenant slugs, and what the api's log may say about a rep.

Against the real processes (tests/conftest.py `services`); the CLI as an operator runs it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import available_timezones

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core import tenancy
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import set_secret, zone_is_known_sql
from tests.api.factories import api_client
from tests.conftest import Services, Stack
from tests.factories import TenantCtx, TenantFactory
from tests.ingest.sources.support import body as fixture
from tests.ingest.test_webhooks import Secrets, sign

LONG = "9" * 321  # one character more than a vendor identity (an e-mail address) may have


JSON = {"content-type": "application/json"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 20.0) -> Any:
    """The first truthy result of `check`, polled until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (found := await check()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f} s"
        await asyncio.sleep(0.1)
    return found


def fields_of(r: httpx.Response) -> list[str | None]:
    assert r.status_code == 422, (r.status_code, r.text[:300])
    return [d["field"] for d in r.json()["error"]["details"]]


# ---------------------------------------------------------------------------------------- reps


CONTROL = ["nul \x00 inside", "escape \x1b[31m", "bell \x07", "del \x7f", "c1 \x85 next line", "lone \ud800"]
REP_FIELDS = {
    "name": lambda v: {"name": v},
    "team": lambda v: {"team": v},
    "aliases.email": lambda v: {"aliases": {"email": f"ada{v}@example.com"}},
    "aliases.phone": lambda v: {"aliases": {"phone": f"+1415{v}"}},
    "aliases.hubspot_owner_id": lambda v: {"aliases": {"hubspot_owner_id": v}},
}


async def test_control_characters_in_a_reps_text_answer_422_naming_the_field(
    services: Services, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    seen = []
    async with httpx.AsyncClient(base_url=services.api_url, headers=bearer(t.api_key)) as client:
        for field, body in REP_FIELDS.items():
            for value in CONTROL:
                # Written by hand: a lone surrogate is valid JSON but no encoder writes it.
                content = orjson.dumps(body(value.replace("\ud800", "@SURROGATE@")))
                content = content.replace(b"@SURROGATE@", b"\\ud800")
                r = await client.put("/v1/reps/r1", content=content, headers=JSON)
                got = fields_of(r) if r.status_code == 422 else r.text
                seen.append((field, repr(value), r.status_code, got))
        listed = (await client.get("/v1/reps")).json()["reps"]
    assert seen == [(f, repr(v), 422, [f]) for f in REP_FIELDS for v in CONTROL]
    assert listed == []


# A rep id names a rep in a URL: each of these could never be read back as it was written.
BAD_REP_IDS = ["a/b", ".", "..", "tab\there", "new\nline", "esc\x1bape", "c1\x9f", "del\x7f"]


async def test_rep_ids_that_cannot_be_read_back_are_refused_by_the_api_and_by_ingest(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    answers = []
    async with httpx.AsyncClient(base_url=services.api_url, headers=bearer(t.api_key)) as client:
        for rep_id in BAD_REP_IDS:
            # The path exactly as written (%2E%2E), which a client would otherwise normalise away.
            target = {"target": b"/v1/reps/" + quote(rep_id, safe="").encode()}
            r = await client.put("/v1/reps/x", json={}, extensions=target)
            answers.append((rep_id, r.status_code, fields_of(r) if r.status_code == 422 else None))
        ok = await client.put("/v1/reps/" + quote("Ada Lovelace (east) #1", safe=""), json={})
    # "a/b" arrives as two path segments: no route, so 404, and nothing is stored either way.
    assert answers == [
        (rep_id, 404, None) if "/" in rep_id else (rep_id, 422, ["path.rep_id"]) for rep_id in BAD_REP_IDS
    ]
    assert ok.status_code == 201, ok.text

    async with httpx.AsyncClient(base_url=services.ingest_url, headers=bearer(t.ingest_key)) as client:
        refused = []
        for i, rep_id in enumerate(BAD_REP_IDS):
            event = {"event_id": f"e{i}", "type": "email.sent", "occurred_at": "2026-10-05T10:00:00Z"}
            r = await client.post(f"/v1/events/{t.slug}", json={**event, "rep_id": rep_id})
            refused.append((rep_id, fields_of(r)))
    assert refused == [(rep_id, ["rep_id"]) for rep_id in BAD_REP_IDS]
    async with engine.connect() as conn:
        stored = await conn.scalar(text("SELECT count(*) FROM reps WHERE tenant = :t"), {"t": t.slug})
    assert stored == 1


# ------------------------------------------------------------------------------------ timezones

# Each loads in Python, and PostgreSQL refuses it: `posixrules` is the rules file of POSIX TZ strings,
# `posix/` and `right/` are copies (the latter with leap seconds) outside the IANA names.
UNKNOWN_TO_POSTGRES = ["posixrules", "posix/Europe/Berlin", "right/UTC"]


@pytest.mark.parametrize("zone", UNKNOWN_TO_POSTGRES)
async def test_a_timezone_postgres_does_not_know_answers_422_and_is_refused_for_a_tenant(
    services: Services, tenants: TenantFactory, stack: Stack, zone: str
) -> None:
    t = await tenants.create()
    async with httpx.AsyncClient(base_url=services.api_url, headers=bearer(t.api_key)) as client:
        r = await client.put("/v1/reps/r1", json={"timezone": zone})
    assert fields_of(r) == ["timezone"]
    slug = f"tz-{secrets.token_hex(3)}"
    done = cli(stack, "tenants", "create", slug, "--timezone", zone)
    assert (done.returncode, done.stderr.strip()) == (1, f"error: unknown IANA timezone {zone!r}")


async def test_a_zone_python_knows_and_the_database_does_not_is_refused_by_the_database(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if Python's timezone database were newer than PostgreSQL's: the write asks the database."""
    t = await tenants.create()
    monkeypatch.setattr(tenancy, "_iana_names", lambda: frozenset({"UTC", "posixrules"}))
    async with api_client(stack) as client:
        r = await client.put("/v1/reps/r1", json={"timezone": "posixrules"}, headers=bearer(t.api_key))
    assert r.json()["error"]["details"] == [
        {"field": "timezone", "reason": "must be an IANA timezone name the database knows"}
    ]
    with pytest.raises(tenancy.TenancyError, match="unknown IANA timezone 'posixrules'"):
        await tenancy.create_tenant(engine, f"tz-{secrets.token_hex(3)}", "USD", "posixrules")


# Not zones, but words a time may end with, and other near misses (PostgreSQL takes some as offsets).
NOT_ZONES = ["", " ", "BC", "ad", "Mon", "friday", "PM", "allballs", "today", "epoch", "J", "12", "+3"]
NOT_ZONES += ["12:00", "Europe/Berlin BC", "Europe/Berlin\n", " UTC", "europe/berlin", "/UTC", "UTC UTC"]


async def test_the_guard_of_stored_zones_agrees_with_postgres_on_every_name_python_loads(
    engine: AsyncEngine,
) -> None:
    """services.core.tenancy.zone_is_known_sql: what PostgreSQL accepts of every name Python loads,
    and never a name PostgreSQL refuses."""
    loads = available_timezones() | {"Factory", "posixrules", *UNKNOWN_TO_POSTGRES}
    accepts = """
CREATE FUNCTION pg_temp.accepts(zone text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN PERFORM timezone(zone, now()); RETURN true; EXCEPTION WHEN others THEN RETURN false; END $$"""
    guard = zone_is_known_sql("z")
    async with engine.connect() as conn:
        await conn.execute(text(accepts))
        rows = await conn.execute(
            text(f"SELECT z, pg_temp.accepts(z), {guard} FROM unnest(CAST(:names AS text[])) AS z"),
            {"names": sorted(loads | set(NOT_ZONES))},
        )
        verdicts = {zone: (accepted, known) for zone, accepted, known in rows}
    assert [zone for zone in sorted(loads) if verdicts[zone][0] != verdicts[zone][1]] == []
    assert [zone for zone, (accepted, known) in verdicts.items() if known and not accepted] == []
    assert not any(verdicts[zone][1] for zone in UNKNOWN_TO_POSTGRES)


async def test_a_rep_stored_with_such_a_timezone_is_read_in_utc_not_answered_500(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    async with engine.begin() as conn:
        for rep_id, zone in (("odd", "posixrules"), ("even", "Europe/Berlin")):
            await conn.execute(
                text("INSERT INTO reps (tenant, rep_id, team, timezone) VALUES (:t, :r, 'east', :z)"),
                {"t": t.slug, "r": rep_id, "z": zone},
            )
    async with httpx.AsyncClient(base_url=services.api_url, headers=bearer(t.api_key)) as client:
        reads = {
            path: await client.get(path)
            for path in (
                "/v1/reps/odd/metrics",
                "/v1/reps/odd/metrics?window=7d",
                "/v1/teams/east/metrics",
                "/v1/coaching/reps/odd",
                "/v1/coaching/reps/even",
                "/v1/coaching/team?team=east",
                "/v1/training/ramp",
            )
        }
    assert {path: r.status_code for path, r in reads.items()} == dict.fromkeys(reads, 200)


# ------------------------------------------------------------------------------------ tenants


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


LOOKALIKES = {
    "DEMO": "capital letters",
    "d\u0435mo": "a Cyrillic e",
    "demo_1": "an underscore",
    "demo-": "a trailing hyphen",
    "demo\u200b": "a zero-width space",
    "d" * 64: "64 characters",
}


def test_tenant_slugs_are_lowercase_ascii_and_look_alikes_are_refused(stack: Stack) -> None:
    for slug in LOOKALIKES:
        done = cli(stack, "tenants", "create", slug)
        assert done.returncode == 1, (slug, done.stdout, done.stderr)
        assert done.stderr.strip() == (
            "error: a tenant slug must be 1-63 lowercase ASCII letters, digits and '-', "
            f"starting and ending with a letter or digit; not {slug!r}"
        )
    ok = f"acme-{secrets.token_hex(3)}"
    assert cli(stack, "tenants", "create", ok).returncode == 0


# -------------------------------------------------------------------------- vendor identities


def _aircall(body: bytes, identity: str) -> bytes:
    payload = orjson.loads(body)
    payload["data"]["user"]["id"] = identity
    payload["data"]["id"] = secrets.randbelow(10**9)
    return orjson.dumps(payload)


def _twilio(body: bytes, identity: str) -> bytes:
    form = dict(p.split("=", 1) for p in body.decode().split("&"))
    form["From"] = quote(identity, safe="")
    form["CallSid"] = "CA" + secrets.token_hex(16)
    return "&".join(f"{k}={v}" for k, v in form.items()).encode()


def _salesforce(body: bytes, identity: str) -> bytes:
    return body.replace(b"0055e000003QwErAAK", identity.encode())


def _hubspot(body: bytes, identity: str) -> bytes:
    items = [i for i in orjson.loads(body) if i.get("propertyName") == "hubspot_owner_id"]
    return orjson.dumps([{**i, "propertyValue": identity} for i in items])


# vendor -> (fixture, its rewrite, the identity): Salesforce users' ids start with 005.
VENDOR_CASES = {
    "aircall": ("aircall_call_ended.json", _aircall, LONG),
    "twilio": ("twilio_outbound_completed.form", _twilio, LONG),
    "salesforce": ("salesforce_opportunities.xml", _salesforce, "005" + LONG),
    "hubspot": ("hubspot_deals.json", _hubspot, LONG),
}


async def vendor_tenant(tenants: TenantFactory, engine: AsyncEngine) -> tuple[TenantCtx, Secrets]:
    keys = Secrets()
    t = await tenants.create()
    for source, value in keys.stored().items():
        await set_secret(engine, DEV_SECRET_KEY, t.slug, source, value)
    return t, keys


@pytest.mark.parametrize("vendor", VENDOR_CASES)
async def test_a_vendor_rep_identity_too_long_to_be_anyones_is_accepted_as_unassigned(
    services: Services, tenants: TenantFactory, engine: AsyncEngine, vendor: str
) -> None:
    t, keys = await vendor_tenant(tenants, engine)
    name, rewrite, identity = VENDOR_CASES[vendor]
    delivery = sign(vendor, rewrite(fixture(name), identity), t.slug, keys, base=services.ingest_url)
    async with httpx.AsyncClient(base_url=services.ingest_url) as client:
        r = await client.post(delivery.path, content=delivery.body, headers=delivery.headers)
    assert r.status_code in (200, 202), r.text

    async def archived() -> list[Any]:
        sql = (
            "SELECT payload->'rep_alias' FROM events WHERE tenant = :t UNION ALL "
            "SELECT to_jsonb(array[alias_kind, alias_value, value]) FROM crm_updates "
            "WHERE tenant = :t AND property = 'owner'"
        )
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), {"t": t.slug})).scalars())

    # Folded, with the identity unknown: no rep alias, and an owner nobody is.
    found = await eventually(archived, f"the {vendor} deliveries being folded")
    assert all(v in (None, [None, None, None]) for v in found), found


# ------------------------------------------------------------------------------------ event times


TIMES = {
    "a number": 1_780_000_000,
    "year 1": "0001-01-01T00:00:00Z",
    "year 1800": "1800-06-01T12:00:00+00:00",
}


async def test_event_times_the_aggregator_cannot_fold_answer_422_on_events_and_vendor_routes(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t, keys = await vendor_tenant(tenants, engine)
    answers = []
    async with httpx.AsyncClient(base_url=services.ingest_url) as client:
        for what, at in TIMES.items():
            event = {"event_id": f"t-{what}", "type": "email.sent", "occurred_at": at, "rep_id": "r1"}
            r = await client.post(f"/v1/events/{t.slug}", json=event, headers=bearer(t.ingest_key))
            answers.append(("events", what, r.status_code, fields_of(r)))
        for what, seconds in {"year 1": -62_135_596_800, "year 1800": -5_351_616_000}.items():
            payload = orjson.loads(fixture("aircall_call_ended.json"))
            payload["data"]["ended_at"] = seconds
            d = sign("aircall", orjson.dumps(payload), t.slug, keys, base=services.ingest_url)
            r = await client.post(d.path, content=d.body, headers=d.headers)
            answers.append(("aircall", what, r.status_code, fields_of(r)))
        form = {"CallSid": "CA1", "CallStatus": "completed", "Direction": "outbound-api", "From": "+1415"}
        form["Timestamp"] = "Sun, 01 Jun 1800 12:00:00 +0000"
        d = sign("twilio", urlencode(form).encode(), t.slug, keys, base=services.ingest_url)
        r = await client.post(d.path, content=d.body, headers=d.headers)
        answers.append(("twilio", "year 1800", r.status_code, fields_of(r)))
    assert answers == [
        ("events", "a number", 422, ["occurred_at"]),
        ("events", "year 1", 422, ["occurred_at"]),
        ("events", "year 1800", 422, ["occurred_at"]),
        ("aircall", "year 1", 422, ["data.ended_at"]),
        ("aircall", "year 1800", 422, ["data.ended_at"]),
        ("twilio", "year 1800", 422, ["Timestamp"]),
    ]


# --------------------------------------------------------------------------------- the api's log


async def test_a_database_error_in_the_apis_log_carries_no_email_or_phone_number(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    email = f"ada.{secrets.token_hex(4)}@example.com"
    phone = "+1415" + str(secrets.randbelow(10**7)).zfill(7)
    body = {"name": "Ada", "aliases": {"email": email, "phone": phone}}
    log = services.stack.root / "api.log"
    async with httpx.AsyncClient(base_url=services.api_url, headers=bearer(t.api_key), timeout=30) as client:
        assert (await client.put("/v1/reps/ada", json=body)).status_code == 201
        start = log.stat().st_size
        # The rep's row is locked; its replacement waits, and is cancelled as an operator (or a statement
        # timeout) would: a database error in the middle of a statement carrying the rep's aliases.
        async with engine.connect() as conn, conn.begin():
            lock = "SELECT 1 FROM reps WHERE tenant = :t AND rep_id = 'ada' FOR UPDATE"
            await conn.execute(text(lock), {"t": t.slug})
            put = asyncio.ensure_future(client.put("/v1/reps/ada", json=body))

            async def cancelled() -> bool:
                async with engine.connect() as other:
                    sql = (
                        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE 'INSERT INTO reps %' AND pid <> pg_backend_pid()"
                    )
                    return bool((await other.execute(text(sql))).scalars().all())

            await eventually(cancelled, "the PUT waiting for the lock")
            r = await put
    assert r.status_code >= 500

    def logged() -> str:
        with log.open(errors="replace") as f:
            f.seek(start)
            return f.read()

    async def traceback_logged() -> str:
        return "Traceback" in (found := logged()) and found

    written = await eventually(traceback_logged, "the error's traceback in the api's log")
    assert "canceling statement" in written
    assert email not in written
    assert email.split("@")[0] not in written
    assert phone[1:] not in written
