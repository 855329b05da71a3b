"""The demo's vendor requests, checked with the ingest's own adapters: they verify, and they map to
exactly the events the model meant (so a vendor route and /v1/events count the same thing)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from devstack.demo.credentials import sendgrid_key
from devstack.demo.simulate import DemoEvent, Via
from devstack.demo.vendors import BATCH, VENDORS, Credentials, payloads, sendgrid_public_key, sign
from services.core.events import BuyerEvent, RepAlias
from services.ingest.sources import aircall, fathom, hubspot, sendgrid, stripe, twilio
from services.ingest.sources.common import InboundRequest, MappingContext
from tests.demo.conftest import SmallOrg

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
BASE = "http://127.0.0.1:8001"
CREDS = Credentials(
    ingest_key="sl_000000000000_key",
    webhook_secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
    hubspot="hubspot-app-secret",
    twilio="twilio-auth-token",
    aircall="aircall-token",
    sendgrid=sendgrid_key("test", "t1"),
    fathom="whsec_" + "ZmF0aG9tLWRlbW8tc2VjcmV0LWtleQ==",
    stripe="whsec_" + "c3RyaXBlLWRlbW8tc2lnbmluZy1zZWNyZXQ",
)
ADAPTERS: dict[str, Any] = {
    "twilio": twilio,
    "aircall": aircall,
    "sendgrid": sendgrid,
    "hubspot": hubspot,
    "fathom": fathom,
    "stripe": stripe,
}
SECRETS = {
    "twilio": CREDS.twilio,
    "aircall": CREDS.aircall,
    "hubspot": CREDS.hubspot,
    "sendgrid": sendgrid_public_key(sendgrid_key("test", "t1")),
    "fathom": CREDS.fathom,
    "stripe": CREDS.stripe,
}
# How each vendor names the rep: the aggregator resolves it to the rep_id.
ALIASES = {"twilio": "phone", "aircall": "aircall_user_id", "fathom": "email"}
ALL_ROUTES: frozenset[Via] = frozenset(VENDORS)


def vendor_sample(events: list[DemoEvent]) -> list[DemoEvent]:
    """A few events of every vendor, type and outcome."""
    seen: Counter[tuple[str, str, str | None]] = Counter()
    out = []
    for e in events:
        key = (e.via, e.type, e.outcome)
        if e.via != "api" and seen[key] < 3:
            seen[key] += 1
            out.append(e)
    return out


def expected(e: DemoEvent) -> dict[str, Any]:
    return BuyerEvent.model_validate(e.canonical()).model_dump(mode="json", exclude_none=True)


def test_every_vendor_request_verifies_and_maps_to_the_planned_event(
    small_org: SmallOrg,
) -> None:
    org, events = small_org
    sample = vendor_sample(events)
    assert {(e.via, e.outcome) for e in sample if e.via in ALIASES} >= {
        ("twilio", "connected"), ("twilio", "voicemail"), ("twilio", "no_answer"), ("twilio", "busy"),
        ("aircall", "connected"), ("aircall", "voicemail"), ("aircall", "no_answer"), ("fathom", "connected"),
    }  # fmt: skip
    ctx = MappingContext(currency="USD", received_at=NOW)
    for e in sample:
        (payload,) = payloads([e], "t1", CREDS, ALL_ROUTES)
        assert payload.via == e.via
        url = BASE + payload.path
        request = InboundRequest("POST", url, sign(payload, url, CREDS, NOW), payload.body, NOW)
        adapter = ADAPTERS[e.via]
        adapter.verify(request, SECRETS[e.via])
        (mapped,) = adapter.to_events(adapter.parse(payload.body), ctx).events
        got = mapped.event.model_dump(mode="json", exclude_none=True, exclude={"attributes"})
        want = expected(e)
        if e.via == "stripe":  # a Stripe subscription says its currency (the demo tenant's); 4 places
            assert got.pop("currency") == "USD"
            assert Decimal(got.pop("mrr")) == Decimal(want.pop("mrr"))
        if e.via in ALIASES:
            # The vendor names the rep by its own identity, which the aggregator resolves.
            kind = ALIASES[e.via]
            rep = org.rep(want.pop("rep_id"))
            assert mapped.rep_alias == RepAlias(kind=kind, value=getattr(rep, kind))
        assert got == want, e


def test_canonical_batches_are_signed_with_standard_webhooks_or_the_key(
    small_org: SmallOrg,
) -> None:
    _, events = small_org
    (payload,) = payloads([e for e in events if e.via == "api"][:10], "t1", CREDS, frozenset())
    headers = sign(payload, BASE + payload.path, CREDS, datetime.now(UTC))
    Webhook(CREDS.webhook_secret or "").verify(payload.body, headers)
    assert [e["event_id"] for e in orjson.loads(payload.body)["events"]] == [
        e.event_id for e in events if e.via == "api"
    ][:10]

    keyed = Credentials(ingest_key="sl_000000000000_key")
    assert sign(payload, BASE + payload.path, keyed, NOW)["Authorization"] == "Bearer sl_000000000000_key"


@pytest.mark.parametrize(
    ("routes", "creds"),
    [
        (frozenset(), CREDS),  # an ingest without vendor routes
        (ALL_ROUTES, Credentials(ingest_key="k")),  # no vendor secrets
    ],
)
def test_without_a_route_or_a_secret_vendor_events_go_canonical(
    small_org: SmallOrg, routes: frozenset[Via], creds: Credentials
) -> None:
    _, events = small_org
    sent = payloads(events, "t1", creds, routes)
    assert {p.via for p in sent} == {"api"}
    ids = [e["event_id"] for p in sent for e in orjson.loads(p.body)["events"]]
    assert sorted(ids) == sorted(e.event_id for e in events)


def test_payloads_keep_every_event_once_within_batch_limits(
    small_org: SmallOrg,
) -> None:
    _, events = small_org
    sent = payloads(events, "t1", CREDS, ALL_ROUTES)
    assert sum(p.events for p in sent) == len(events)
    assert all(p.events <= BATCH[p.via] for p in sent)
    assert all(len(p.body) < 1024 * 1024 for p in sent)
    # Interleaved: every route is in use in the first and in the last tenth of the load.
    tenth = len(sent) // 10
    for part in (sent[:tenth], sent[-tenth:]):
        assert {p.via for p in part} == {"api", *VENDORS}
