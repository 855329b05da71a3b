"""Shared pieces of the adapter tests: fixture bodies, a fixed clock, expected events."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.core.events import BuyerEvent
from services.ingest.sources.common import MappingContext

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
