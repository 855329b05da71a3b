"""No secret ever reaches a log line, and a revoked key stops working within the auth cache TTL.

A fresh ingest, aggregator and api run with debug logging, their own log files, a real secret key and a
database URL with a password. Traffic includes good and bad keys, signatures made with and without the
right secrets, vendor webhooks carrying their secrets, and a key revoked while in use. Then every line
of every log (and the CLI's output) is searched for every secret.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from devstack.embedded import ServiceProcess, free_port
from services.core.kafka import ensure_topics
from services.core.tenancy import SCOPES, create_key, create_tenant, set_secret
from tests.conftest import Stack

TTL_S = 5.0  # SALESLOOP_AUTH_CACHE_TTL_S: a revoked key may work this long, not longer


class Secrets:
    def __init__(self, stack: Stack) -> None:
        self.secret_key = secrets.token_urlsafe(32)
        self.db_password = "pw-" + secrets.token_urlsafe(16)
        parts = urlsplit(stack.database_url)
        user = parts.netloc.split(":", 1)[0].split("@", 1)[0] or "postgres"
        # Local connections are trusted, so any password works and the URL carries one like in production.
        self.database_url = urlunsplit(
            parts._replace(netloc=f"{user}:{self.db_password}@{parts.hostname or ''}")
        )
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.vendor = {
            "hubspot": secrets.token_hex(16),
            "twilio": secrets.token_hex(16),
            "aircall": secrets.token_hex(16),
            "salesforce": "00D" + secrets.token_hex(6) + ":" + secrets.token_urlsafe(32),
        }
        self.ingest_key = ""
        self.api_key = ""

    def all(self) -> dict[str, str]:
        """Every secret, and the parts of it that are secret on their own."""
        out = {
            "SALESLOOP_SECRET_KEY": self.secret_key,
            "database password": self.db_password,
            "webhook secret": self.webhook_secret,
            "webhook secret key bytes": self.webhook_secret.removeprefix("whsec_"),
            "ingest key": self.ingest_key,
            "ingest key secret part": self.ingest_key.split("_", 2)[2],
            "api key": self.api_key,
            "api key secret part": self.api_key.split("_", 2)[2],
        }
        out |= {f"{source} secret": value for source, value in self.vendor.items()}
        out["salesforce endpoint token"] = self.vendor["salesforce"].partition(":")[2]
        return out


@pytest.fixture
def fresh(stack: Stack, tmp_path: Path) -> Iterator[tuple[Secrets, dict[str, ServiceProcess], Path]]:
    s = Secrets(stack)
    env = {
        **stack.env,
        "SALESLOOP_DATABASE_URL": s.database_url,
        "SALESLOOP_SECRET_KEY": s.secret_key,
        "SALESLOOP_LOG_LEVEL": "DEBUG",
        "SALESLOOP_AUTH_CACHE_TTL_S": str(TTL_S),
        "SALESLOOP_EVENTS_TOPIC": f"secrets-{secrets.token_hex(4)}",
        "SALESLOOP_CONSUMER_GROUP": f"secrets-{secrets.token_hex(4)}",
    }
    ports = {"ingest": free_port(), "api": free_port(), "aggregator": free_port()}
    procs = {
        name: ServiceProcess(
            name,
            [name, "--metrics-port" if name == "aggregator" else "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/readyz",
            tmp_path / f"{name}.log",
        )
        for name, port in ports.items()
    }
    try:
        yield s, procs, tmp_path
    finally:
        for proc in procs.values():
            proc.stop()


def hubspot_headers(secret: str, url: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    digest = hmac.new(secret.encode(), b"POST" + url.encode() + body + ts.encode(), hashlib.sha256).digest()
    return {
        "content-type": "application/json",
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": ts,
    }


async def test_no_secret_is_ever_logged_and_revoked_keys_stop_within_the_ttl(
    stack: Stack, engine: AsyncEngine, fresh: tuple[Secrets, dict[str, ServiceProcess], Path]
) -> None:
    s, procs, logs = fresh
    slug = f"sec-{secrets.token_hex(3)}"
    await create_tenant(engine, slug, "USD", "UTC")
    s.ingest_key = await create_key(engine, slug, ["ingest"])
    s.api_key = await create_key(engine, slug, sorted(SCOPES - {"ingest"}))
    await set_secret(engine, s.secret_key, slug, "webhooks", s.webhook_secret)
    for source, value in s.vendor.items():
        await set_secret(engine, s.secret_key, slug, source, value)
    env = procs["ingest"].env
    await ensure_topics(stack.settings(events_topic=env["SALESLOOP_EVENTS_TOPIC"]))
    for proc in procs.values():
        proc.start()
    ingest_url = procs["ingest"].health_url.removesuffix("/readyz")
    api_url = procs["api"].health_url.removesuffix("/readyz")

    good_key = {"Authorization": f"Bearer {s.ingest_key}"}
    near_miss = s.ingest_key[:-1] + ("A" if s.ingest_key[-1] != "A" else "B")
    event = {"event_id": "e-1", "type": "email.sent", "occurred_at": "2026-10-05T10:00:00Z", "rep_id": "r1"}
    body = orjson.dumps(event)
    now = datetime.now(UTC)
    good_sig = Webhook(s.webhook_secret).sign("msg-1", now, body.decode())
    async with httpx.AsyncClient(base_url=ingest_url) as ingest, httpx.AsyncClient(base_url=api_url) as api:
        post = f"/v1/events/{slug}"
        statuses = [
            (await ingest.post(post, json=event, headers=good_key)).status_code,
            (await ingest.post(post, json={**event, "event_id": 5}, headers=good_key)).status_code,
            (
                await ingest.post(
                    post, content=b"{bad", headers={**good_key, "content-type": "application/json"}
                )
            ).status_code,
            (
                await ingest.post(post, json=event, headers={"Authorization": f"Bearer {near_miss}"})
            ).status_code,
            (
                await ingest.post(post, json=event, headers={"Authorization": f"Bearer {s.api_key}"})
            ).status_code,
            (await ingest.post("/v1/events/other", json=event, headers=good_key)).status_code,
        ]
        webhook = {"content-type": "application/json", "webhook-id": "msg-1"}
        for signature, ts in ((good_sig, now), ("v1," + base64.b64encode(b"x" * 32).decode(), now)):
            headers = {
                **webhook,
                "webhook-timestamp": str(int(ts.timestamp())),
                "webhook-signature": signature,
            }
            statuses.append((await ingest.post(post, content=body, headers=headers)).status_code)
        hubspot = f"/webhooks/hubspot/{slug}"
        hub_body = b'[{"eventId": 1, "subscriptionType": "contact.creation", "objectId": 7, "occurredAt": 1}]'
        for secret in (s.vendor["hubspot"], "wrong"):
            headers = hubspot_headers(secret, f"{ingest_url}{hubspot}-tampered", hub_body)
            statuses.append((await ingest.post(hubspot, content=hub_body, headers=headers)).status_code)
        aircall = {"event": "call.ended", "resource": "call", "timestamp": 1, "token": s.vendor["aircall"]}
        statuses.append((await ingest.post(f"/webhooks/aircall/{slug}", json=aircall)).status_code)
        statuses.append(
            (await ingest.post(f"/webhooks/aircall/{slug}", json={**aircall, "token": "nope"})).status_code
        )
        statuses.append(
            (
                await ingest.post(
                    f"/webhooks/twilio/{slug}",
                    data={"CallSid": "CA1", "CallStatus": "completed"},
                    headers={"X-Twilio-Signature": base64.b64encode(b"y" * 20).decode()},
                )
            ).status_code
        )
        org, _, sf_token = s.vendor["salesforce"].partition(":")
        soap = (
            '<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
            f"<soapenv:Body><notifications><OrganizationId>{org}</OrganizationId>"
            "<Notification><Id>1</Id></Notification></notifications></soapenv:Body></soapenv:Envelope>"
        )
        headers = {"content-type": "text/xml"}
        for token in (sf_token, sf_token[::-1]):  # the endpoint token travels in the URL
            r = await ingest.post(f"/webhooks/salesforce/{slug}?token={token}", content=soap, headers=headers)
            statuses.append(r.status_code)
        api_key = {"Authorization": f"Bearer {s.api_key}"}
        statuses.append((await api.get("/v1/reps", headers=api_key)).status_code)
        statuses.append(
            (await api.get("/v1/reps", headers={"Authorization": "Bearer " + near_miss})).status_code
        )
        assert statuses[:2] == [202, 422]
        assert sorted(statuses[6:8]) == [202, 401]
        assert all(code < 500 for code in statuses), statuses

        # Revocation: in use a moment ago, refused within the cache TTL.
        assert (await ingest.post(post, json=event, headers=good_key)).status_code == 202
        assert (await api.get("/v1/reps", headers=api_key)).status_code == 200
        cli_output = ""
        for key in (s.ingest_key, s.api_key):
            done = subprocess.run(
                [sys.executable, "-m", "services.cli", "keys", "revoke", key.split("_")[1]],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            cli_output += done.stdout + done.stderr
        revoked_at = time.monotonic()
        deadline = revoked_at + TTL_S + 3
        while (await ingest.post(post, json=event, headers=good_key)).status_code != 401:
            assert time.monotonic() < deadline, "the revoked ingest key still works after the TTL"
            await asyncio.sleep(0.2)
        while (await api.get("/v1/reps", headers=api_key)).status_code != 401:
            assert time.monotonic() < deadline, "the revoked api key still works after the TTL"
            await asyncio.sleep(0.2)

    for proc in procs.values():
        proc.stop()
    lines = [
        (path.name, line)
        for path in sorted(logs.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ] + [("cli", line) for line in cli_output.splitlines()]
    assert sum(1 for name, _ in lines if name == "ingest.log") > 10, "the services logged next to nothing"
    assert any('"level": "debug"' in line or '"level":"debug"' in line for _, line in lines)
    leaks = [
        (what, name, line[:200]) for what, secret in s.all().items() for name, line in lines if secret in line
    ]
    assert leaks == []
