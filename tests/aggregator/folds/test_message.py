"""CRM updates on the events topic: what ingest writes decodes back; what cannot be folded says why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from services.aggregator.fold import fold
from services.core import crm
from services.core.crm import CrmUpdate, EntityUpdate
from services.core.events import SCHEMA_HEADER, RepAlias, Source
from services.core.wire import Event, Malformed, decode, decode_message
from tests.aggregator.folds.support import event

RECEIVED = datetime(2026, 11, 2, 12, 0, 5, tzinfo=UTC)
OWNER = EntityUpdate(
    "deal", "4711", "owner", "31337", datetime(2026, 11, 2, 12, tzinfo=UTC), "hubspot:1:2:3:4711",
    RepAlias(kind="hubspot_owner_id", value="31337"),
)  # fmt: skip


def test_an_update_written_by_ingest_decodes_to_the_update() -> None:
    value = crm.to_message(OWNER, "acme", Source.HUBSPOT, RECEIVED)
    assert crm.kafka_key("acme", OWNER.entity_id) == b"acme:4711"
    decoded = decode_message(value, [crm.SCHEMA_HEADER])
    assert decoded == CrmUpdate(
        "acme", "hubspot:1:2:3:4711:owner", "hubspot", "deal", "4711", "owner", "31337",
        OWNER.occurred_at, RECEIVED, ("hubspot_owner_id", "31337"),
    )  # fmt: skip


def test_buyer_events_still_decode_through_the_same_entry() -> None:
    value = orjson.dumps(
        {"event_id": "e", "type": "email.sent", "occurred_at": "2026-11-02T12:00:00Z", "tenant": "acme",
         "source": "api", "received_at": "2026-11-02T12:00:01Z", "rep_id": "r1"}
    )  # fmt: skip
    assert decode_message(value, [SCHEMA_HEADER]) == decode(value, [SCHEMA_HEADER])
    assert isinstance(decode_message(value, [SCHEMA_HEADER]), Event)


def body(**changes: Any) -> bytes:
    base = orjson.loads(crm.to_message(OWNER, "acme", Source.HUBSPOT, RECEIVED))
    return orjson.dumps({k: v for k, v in {**base, **changes}.items() if v is not None})


@pytest.mark.parametrize(
    ("value", "reason", "where"),
    [
        (b"", "invalid_json", "empty"),
        (b"[1]", "invalid_json", "object"),
        (b"{", "invalid_json", ""),
        (body(update_id=None), "missing_field", "update_id"),
        (body(property="colour"), "invalid_field", "property"),
        (body(entity="company"), "invalid_field", "entity"),
        (body(property="amount", value="lots"), "invalid_field", "amount"),
        (body(property="amount", value="-1"), "invalid_field", "amount"),
        (body(property="channel", value="tv"), "invalid_field", "channel"),
        (body(occurred_at="2026-11-02T12:00:00"), "invalid_field", "occurred_at"),
        (body(extra=1), "invalid_field", "extra"),
    ],
)
def test_updates_that_cannot_be_folded_are_refused_with_a_reason(
    value: bytes, reason: str, where: str
) -> None:
    decoded = decode_message(value, [crm.SCHEMA_HEADER])
    assert isinstance(decoded, Malformed)
    assert decoded.reason == reason
    assert where in decoded.detail
    if value.startswith(b'{"'):
        assert decoded.tenant == "acme"


def test_an_invalid_vendor_update_cannot_be_written() -> None:
    with pytest.raises(ValueError, match="channel"):
        crm.to_message(
            EntityUpdate("contact", "1", "channel", "tv", RECEIVED, "x"), "acme", Source.HUBSPOT, RECEIVED
        )


def test_only_crm_deal_and_lead_events_are_attributed_through_entity_state() -> None:
    at = "2026-11-02T12:00:00Z"
    assert event("acme", "deal.won", at, source="hubspot", deal_id="d1").entity == ("deal", "d1")
    assert event("acme", "lead.created", at, source="hubspot", contact_id="c1").entity == ("contact", "c1")
    assert event("acme", "deal.won", at, source="salesforce", deal_id="d1").entity is None
    assert event("acme", "deal.won", at, deal_id="d1", rep_id="r1").entity is None
    assert event("acme", "call.completed", at, source="hubspot", contact_id="c1").entity is None


def test_the_plain_fold_counts_attributed_events_only_in_the_watermark() -> None:
    won = event("acme", "deal.won", "2026-11-02T12:00:00Z", source="hubspot", deal_id="d1", amount="5",
                rep_id="r1", channel="referral")  # fmt: skip
    deltas = fold([won], lambda tenant, rep: ZoneInfo("UTC"))
    assert (deltas.rep, deltas.channel, deltas.events) == ({}, {}, 1)
