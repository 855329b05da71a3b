"""A small team through the five vendor webhooks and real processes: its metrics, computed by hand.

Two reps are registered with their vendor identities. Their October is delivered the way the vendors
deliver it (Twilio and Aircall calls, SendGrid email events, Salesforce Outbound Messages, HubSpot
CRM notifications), then delivered again, sequentially and concurrently, as vendors retry. Secrets and
options are set with the `salesloop` command before the ingest first sees the tenant (it caches them).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Services, Stack
from tests.factories import TenantCtx, TenantFactory
from tests.ingest.test_webhooks import Delivery, Secrets, sign
from tests.support import wait_folded
from tests.system.reference import assert_metrics_equal

DANA_PHONE, EVE_PHONE = "+14155550100", "+14155550111"
DANA_SF, EVE_SF = "0055e000003QwErAAK", "0055e000003QwEsAAK"
CONTACT_SF, CONTACT_HS = "0035e00000CoNtBAAT", "847297356"
REPS: dict[str, dict[str, Any]] = {
    "r-dana": {
        "name": "Dana",
        "team": "west",
        "timezone": "UTC",
        "quota_monthly": "20000",
        "aliases": {
            "hubspot_owner_id": "58210455",
            "salesforce_user_id": DANA_SF,
            "phone": DANA_PHONE,
            "aircall_user_id": "123456",
            "email": "dana@example.com",
        },
    },
    "r-eve": {
        "name": "Eve",
        "team": "west",
        "timezone": "UTC",
        "aliases": {"salesforce_user_id": EVE_SF, "phone": EVE_PHONE, "aircall_user_id": "654321"},
    },
}


def at(day: int, hour: int = 10, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, second, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- payloads


def twilio_callback(
    sid: str, status: str, direction: str, rep: str, buyer: str, when: datetime, **extra: str
) -> bytes:
    # A <Dial> leg (outbound-dial) goes from the caller to the rep, as an inbound call does.
    caller, called = (rep, buyer) if direction == "outbound-api" else (buyer, rep)
    params = {
        "AccountSid": "ACae6e420f425248d6a26948c17a9e2acf",
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Called": called,
        "Caller": caller,
        "Direction": direction,
        "From": caller,
        "To": called,
        "SequenceNumber": "3",
        "Timestamp": format_datetime(when),
        **extra,
    }
    return urlencode(params).encode()


# CallSid, status, direction, rep's number, time, extra parameters
CALLS: list[tuple[str, str, str, str, datetime, dict[str, str]]] = [
    ("CA01", "completed", "outbound-api", DANA_PHONE, at(5, 14), {"CallDuration": "300"}),
    ("CA02", "no-answer", "outbound-api", DANA_PHONE, at(5, 15), {"CallDuration": "0"}),
    ("CA03", "busy", "outbound-api", DANA_PHONE, at(5, 16), {"CallDuration": "0"}),
    ("CA04", "completed", "outbound-api", EVE_PHONE, at(6, 9), {"CallDuration": "120"}),
    ("CA05", "completed", "inbound", DANA_PHONE, at(6, 11), {"CallDuration": "60"}),
    (
        "CA06",
        "completed",
        "outbound-api",
        EVE_PHONE,
        at(6, 12),
        {"CallDuration": "31", "AnsweredBy": "machine_end_beep"},
    ),
    ("CA01", "ringing", "outbound-api", DANA_PHONE, at(5, 13, 59), {}),
]
TWILIO = [
    twilio_callback(sid, status, direction, rep, f"+1212555{i:04d}", when, **extra)
    for i, (sid, status, direction, rep, when, extra) in enumerate(CALLS)
]


def aircall_call(
    call_id: int, user: str, direction: str, start: datetime, answered_s: int | None, talk_s: int
) -> bytes:
    started = int(start.timestamp())
    answered = started + answered_s if answered_s is not None else None
    ended = (answered or started + 25) + talk_s
    data = {
        "id": call_id,
        "started_at": started,
        "answered_at": answered,
        "ended_at": ended,
        "duration": ended - started,
        "status": "done",
        "direction": direction,
        "raw_digits": "+1 415-555-0142",
        "voicemail": None,
        "user": {"id": int(user), "name": "rep"},
    }
    return orjson.dumps(
        {"resource": "call", "event": "call.ended", "timestamp": ended + 30, "token": "", "data": data}
    )


AIRCALL = [
    aircall_call(9001, "123456", "outbound", at(6, 10), answered_s=20, talk_s=300),
    aircall_call(9002, "654321", "outbound", at(7, 10), answered_s=None, talk_s=0),
    aircall_call(9003, "654321", "outbound", at(7, 11), answered_s=12, talk_s=90),
    orjson.dumps(
        {
            "resource": "call",
            "event": "call.created",
            "timestamp": int(at(8).timestamp()),
            "token": "",
            "data": {"id": 9004, "direction": "outbound", "user": {"id": 123456}},
        }
    ),
]


def sendgrid_event(sg_id: str, event: str, rep: str, when: datetime) -> dict[str, Any]:
    return {
        "email": "buyer@acme.example",
        "timestamp": int(when.timestamp()),
        "event": event,
        "sg_event_id": sg_id,
        "sg_message_id": f"msg-{sg_id}",
        "rep_id": rep,
        "contact_id": CONTACT_HS,
    }


SENDGRID = orjson.dumps(
    [
        sendgrid_event("sg1", "processed", "r-dana", at(7, 9)),
        sendgrid_event("sg2", "processed", "r-dana", at(7, 9, 5)),
        sendgrid_event("sg3", "processed", "r-dana", at(8, 9)),
        sendgrid_event("sg4", "processed", "r-eve", at(8, 9)),
        sendgrid_event("sg5", "processed", "r-eve", at(9, 9)),
        sendgrid_event("sg6", "delivered", "r-dana", at(7, 9, 1)),
        {**sendgrid_event("sg7", "open", "r-dana", at(7, 10)), "sg_machine_open": False},
    ]
)


def sf_envelope(*notifications: tuple[str, str, dict[str, str]]) -> bytes:
    items = "".join(
        f'<Notification><Id>{nid}</Id><sObject xsi:type="sf:{kind}" '
        f'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        + "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in sorted(fields.items()))
        + "</sObject></Notification>"
        for nid, kind, fields in notifications
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        "<OrganizationId>00D5e000000KQ2eEAG</OrganizationId><ActionId>04k5e000000CaRkAAK</ActionId>"
        f"{items}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


Notification = tuple[str, str, dict[str, str]]


def opportunity(
    nid: str, opp: str, owner: str, created: int, modified: int, stage: str, **more: str
) -> Notification:
    closed, won = stage.startswith("Closed"), stage == "Closed Won"
    fields = {
        "Id": opp,
        "OwnerId": owner,
        "CreatedDate": iso(at(created)),
        "LastModifiedDate": iso(at(modified)),
    }
    flags = {"StageName": stage, "IsClosed": str(closed).lower(), "IsWon": str(won).lower()}
    return nid, "Opportunity", {**fields, **flags, **more}


def task(nid: str, task_id: str, owner: str, subtype: str, done: datetime, **more: str) -> Notification:
    fields = {
        "Id": task_id,
        "OwnerId": owner,
        "TaskSubtype": subtype,
        "IsClosed": "true",
        "Status": "Completed",
    }
    return nid, "Task", {**fields, "CompletedDateTime": iso(done), "WhoId": CONTACT_SF, **more}


def meeting(
    nid: str, event_id: str, owner: str, booked: datetime, start: datetime, minutes: int
) -> Notification:
    end = start + timedelta(minutes=minutes)
    times = {"CreatedDate": iso(booked), "StartDateTime": iso(start), "EndDateTime": iso(end)}
    return (
        nid,
        "Event",
        {"Id": event_id, "OwnerId": owner, "DurationInMinutes": str(minutes), **times, "WhoId": CONTACT_SF},
    )


SF_OPPORTUNITIES = sf_envelope(
    opportunity("04l01", "0065e00000Opp1AAA", DANA_SF, 2, 20, "Closed Won", Amount="12000"),
    opportunity("04l02", "0065e00000Opp2AAA", DANA_SF, 3, 21, "Closed Lost", Amount="5000"),
    opportunity("04l03", "0065e00000Opp3AAA", EVE_SF, 4, 22, "Prospecting"),
    opportunity("04l04", "0065e00000Opp4AAA", EVE_SF, 5, 25, "Closed Won", Amount="8000.50"),
)
SF_ACTIVITIES = sf_envelope(
    task(
        "04l11",
        "00T5e00000Task1AAA",
        DANA_SF,
        "Call",
        at(7, 15),
        CallType="Outbound",
        CallDurationInSeconds="200",
        CallDisposition="Connected",
    ),
    task("04l12", "00T5e00000Task2AAA", EVE_SF, "Email", at(8, 15)),
    meeting("04l13", "00U5e00000Evt1AAA", DANA_SF, at(9), at(12, 10), 30),
    meeting("04l14", "00U5e00000Evt2AAA", EVE_SF, at(10), at(13, 10), 45),
)


def hubspot_notification(
    event_id: int, kind: str, object_id: int, when: datetime, **change: Any
) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 700000 + event_id % 100,
        "portalId": 891472211,
        "appId": 7906213,
        "occurredAt": int(when.timestamp() * 1000),
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        **change,
    }


HUBSPOT = [
    hubspot_notification(1, "contact.creation", int(CONTACT_HS), at(1, 8)),
    hubspot_notification(2, "deal.creation", 555, at(11)),
    hubspot_notification(
        3,
        "deal.propertyChange",
        555,
        at(11, 10, 1),
        propertyName="hubspot_owner_id",
        propertyValue="58210455",
    ),
    hubspot_notification(
        4, "deal.propertyChange", 555, at(11, 10, 2), propertyName="amount", propertyValue="5000"
    ),
    hubspot_notification(
        5, "deal.propertyChange", 555, at(21), propertyName="dealstage", propertyValue="contractsigned"
    ),
]

# Hand-computed from the deliveries above (window: October, all reps in UTC).
# HubSpot deal events name no owner: HubSpot sends the owner and the amount as separate property
# changes (CRM entity updates), and the aggregator attributes deal 555's creation and win to the owner
# it had then (58210455 = Dana) with its latest amount (5000). Salesforce events carry their OwnerId.
MONTHS = 31 / (365.25 / 12)
EXPECTED = {
    "r-dana": {
        "dials": 5,  # Twilio CA01-03, Aircall 9001, Salesforce call task
        "connects": 3,  # CA01, 9001, the call task
        "connect_rate": 3 / 5,
        "talk_time_s": 300 + 60 + 300 + 200,  # connected calls, the inbound CA05 included
        "talk_ratio": None,
        "emails_sent": 3,
        "email_replies": 0,
        "reply_rate": 0.0,
        "meetings_booked": 1,
        "meetings_held": 1,
        "meeting_rate": 1 / 3,
        "show_rate": 1.0,
        "deals_created": 3,  # Salesforce 2, HubSpot 555
        "deals_won": 2,
        "deals_lost": 1,
        "win_rate": 2 / 3,
        "revenue_won": 17000.0,
        "avg_deal_size": 8500.0,
        "quota_attainment": 17000 / (20000 * MONTHS),
    },
    "r-eve": {
        "dials": 4,  # CA04, CA06 (a machine answered), Aircall 9002, 9003
        "connects": 2,
        "connect_rate": 0.5,
        "talk_time_s": 120 + 90,
        "talk_ratio": None,
        "emails_sent": 3,  # two SendGrid, one Salesforce email task
        "email_replies": 0,
        "reply_rate": 0.0,
        "meetings_booked": 1,
        "meetings_held": 1,
        "meeting_rate": 0.5,
        "show_rate": 1.0,
        "deals_created": 2,
        "deals_won": 1,
        "deals_lost": 0,
        "win_rate": 1.0,
        "revenue_won": 8000.5,
        "avg_deal_size": 8000.5,
        "quota_attainment": None,
    },
}
# Distinct events: Twilio 6 (ringing maps to nothing), Aircall 3, SendGrid 6 (processed and the open),
# Salesforce 8 + 6, HubSpot 3 (lead.created, deal.created, deal.won).
DISTINCT_EVENTS = 6 + 3 + 6 + 14 + 3


# ---------------------------------------------------------------------------------------------- helpers


def salesloop(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESLOOP_")} | stack.env
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def configure(stack: Stack, t: TenantCtx, keys: Secrets) -> None:
    """Secrets and options the way an operator sets them."""
    refused = await asyncio.to_thread(
        salesloop, stack, "tenants", "set-secret", t.slug, "sendgrid", "not-a-key"
    )
    assert refused.returncode == 1
    assert "verification key" in refused.stderr
    commands = [("set-secret", t.slug, source, value) for source, value in keys.stored().items()]
    commands.append(("set-option", t.slug, "hubspot", "won_stages", "closedwon,contractsigned"))
    results = await asyncio.gather(*(asyncio.to_thread(salesloop, stack, "tenants", *c) for c in commands))
    for command, result in zip(commands, results, strict=True):
        assert result.returncode == 0, (command, result.stderr)
    reset = await asyncio.to_thread(
        salesloop, stack, "tenants", "set-option", t.slug, "hubspot", "won_stages", ""
    )
    assert reset.returncode == 0, reset.stderr
    assert "(default)" in reset.stderr
    again = await asyncio.to_thread(
        salesloop, stack, "tenants", "set-option", t.slug, "hubspot", "won_stages", "closedwon,contractsigned"
    )
    assert again.returncode == 0, again.stderr
    wrong = await asyncio.to_thread(
        salesloop, stack, "tenants", "set-option", t.slug, "twilio", "won_stages", "x"
    )
    assert wrong.returncode == 1
    assert "no options" in wrong.stderr


async def register_reps(api: httpx.AsyncClient, t: TenantCtx) -> None:
    for rep, body in REPS.items():
        r = await api.put(f"/v1/reps/{rep}", json=body, headers={"Authorization": f"Bearer {t.api_key}"})
        assert r.status_code in (200, 201), r.text


def deliveries(t: TenantCtx, keys: Secrets, base: str, *, attempt: int = 0) -> list[Delivery]:
    """Every delivery, signed now (a vendor signs each attempt afresh)."""
    hubspot = orjson.dumps([{**item, "attemptNumber": attempt} for item in HUBSPOT])
    return [
        *(sign("twilio", b, t.slug, keys, base=base) for b in TWILIO),
        *(sign("aircall", b, t.slug, keys, base=base) for b in AIRCALL),
        sign("sendgrid", SENDGRID, t.slug, keys, base=base),
        sign("salesforce", SF_OPPORTUNITIES, t.slug, keys, base=base),
        sign("salesforce", SF_ACTIVITIES, t.slug, keys, base=base),
        sign("hubspot", hubspot, t.slug, keys, base=base),
    ]


async def send(ingest: httpx.AsyncClient, d: Delivery) -> None:
    r = await ingest.post(d.path, content=d.body, headers=d.headers)
    assert r.status_code == (200 if d.vendor == "salesforce" else 202), (d.vendor, r.text)


async def flush(ingest: httpx.AsyncClient, t: TenantCtx) -> int:
    """One canonical event per Kafka key the deliveries used; once these are folded, so is every
    delivery before them (one key stays on one partition, folded in order). Returns how many."""
    keyed = [
        {},
        {"rep_id": "r-dana"},
        {"rep_id": "r-eve"},
        {"contact_id": CONTACT_SF},
        {"contact_id": CONTACT_HS},
    ]
    events = [
        {"event_id": f"flush-{i}", "type": "email.opened", "occurred_at": "2026-09-15T10:00:00Z", **key}
        for i, key in enumerate(keyed)
    ]
    r = await ingest.post(
        f"/v1/events/{t.slug}", json={"events": events}, headers={"Authorization": f"Bearer {t.ingest_key}"}
    )
    assert r.status_code == 202, r.text
    return len(events)


# ---------------------------------------------------------------------------------------------- the test


@pytest.mark.soak  # `make soak`; the routes and adapters are tested in tests/ingest by `make test`
async def test_a_team_through_every_vendor_webhook_gets_its_numbers_once(
    services: Services, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    keys = Secrets()
    await configure(services.stack, t, keys)
    base = services.ingest_url
    async with (
        httpx.AsyncClient(base_url=services.ingest_url, timeout=30) as ingest,
        httpx.AsyncClient(base_url=services.api_url, timeout=30) as api,
    ):
        await register_reps(api, t)
        for d in deliveries(t, keys, base):
            await send(ingest, d)
        # Vendors retry: once more one after another, then twice at the same moment.
        for d in deliveries(t, keys, base, attempt=1):
            await send(ingest, d)
        twins = deliveries(t, keys, base, attempt=2)
        await asyncio.gather(*(send(ingest, d) for d in twins + twins))
        await wait_folded(engine, t.slug, DISTINCT_EVENTS + await flush(ingest, t))

        auth = {"Authorization": f"Bearer {t.api_key}"}
        for rep, want in EXPECTED.items():
            r = await api.get(
                f"/v1/reps/{rep}/metrics", params={"from": "2026-10-01", "to": "2026-10-31"}, headers=auth
            )
            assert r.status_code == 200, r.text
            assert_metrics_equal(r.json()["metrics"], want)

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT type, rep_id FROM events WHERE tenant = :t AND source = :s ORDER BY occurred_at"
                ),
                {"t": t.slug, "s": "hubspot"},
            )
        ).all()
    # contractsigned is a won stage of this tenant (set-option), and the deal has no rep without CRM state.
    assert [(row.type, row.rep_id) for row in rows] == [
        ("lead.created", None),
        ("deal.created", None),
        ("deal.won", None),
    ]
