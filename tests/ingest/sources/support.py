"""Shared pieces of the adapter tests: fixture bodies, a fixed clock, expected events and mappings,
and the two ways a vendor refuses what it is sent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.core.events import BuyerEvent, RepAlias
from services.ingest.sources.common import (
    EntityUpdate,
    InboundRequest,
    MappingContext,
    Normalised,
    PayloadError,
    SignatureError,
    VendorEvent,
)
from services.ingest.sources.registry import Vendor

FIXTURES = Path(__file__).parent / "fixtures"
# After every fixture's event time, so nothing is "in the future"; requests are signed at NOW.
NOW = datetime(2026, 7, 7, 17, 0, tzinfo=UTC)
CTX = MappingContext(currency="USD", received_at=NOW)


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def expected(**fields: Any) -> BuyerEvent:
    return BuyerEvent.model_validate(fields, context={"now": NOW})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def with_header(request: InboundRequest, name: str, value: str | None) -> InboundRequest:
    """`request` with its header `name` set to `value`, or without it when `value` is None."""
    headers = {k: v for k, v in request.headers.items() if k != name}
    return replace(request, headers=headers if value is None else {**headers, name: value})


def mapped(name: str) -> Normalised:
    """What the fixture `name` maps to (with CTX and the default options), as written down beside it
    in `<name without its extension>.mapped.json`: each event with its rep identity, the CRM entity
    updates, and how many items map to nothing."""
    written = orjson.loads(body(name.rpartition(".")[0] + ".mapped.json"))

    def alias(item: dict[str, Any]) -> RepAlias | None:
        return RepAlias(**item["rep_alias"]) if "rep_alias" in item else None

    def update(u: dict[str, Any]) -> EntityUpdate:
        fields = {**u, "occurred_at": at(u["occurred_at"]), "rep_alias": alias(u)}
        return EntityUpdate(**fields)

    events = [VendorEvent(expected(**item["event"]), alias(item)) for item in written["events"]]
    updates = [update(u) for u in written.get("entity_updates", [])]
    return Normalised(events, written["ignored"], updates)


def maps(vendor: Vendor[Any, Any], name: str) -> Normalised:
    """What `vendor` makes of the fixture `name`, with CTX and its default options."""
    return vendor.map(vendor.parse(body(name)), CTX, vendor.defaults)


def refused(vendor: Vendor[Any, Any], request: InboundRequest, secret: str, reason: str) -> None:
    """`vendor` refuses `request` with a SignatureError whose reason matches `reason`."""
    with pytest.raises(SignatureError, match=reason):
        vendor.verify(request, secret, vendor.defaults)


def malformed(vendor: Vendor[Any, Any], payload: Any) -> PayloadError:
    """The PayloadError `vendor` raises for `payload` (raw bytes are parsed first)."""

    def run() -> None:
        vendor.map(vendor.parse(payload) if isinstance(payload, bytes) else payload, CTX, vendor.defaults)

    with pytest.raises(PayloadError) as caught:
        run()
    assert caught.value.reason
    return caught.value
