"""The contract of a vendor adapter: what it is given (the request as signed, the mapping context),
what it returns (events with their rep identities, CRM entity updates), and the two errors it raises.
The small pure helpers adapters share are in `kit.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.core.crm import EntityUpdate
from services.core.events import BuyerEvent, RepAlias


class SignatureError(Exception):
    """The request is not genuine (answer 401). `reason` is short and safe to log; never echo secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PayloadError(Exception):
    """The payload is malformed (answer 422). `field` is a dotted path in the vendor's own names,
    None for the item as a whole; `index` is the item's position in a vendor batch."""

    def __init__(self, field: str | None, reason: str, index: int | None = None) -> None:
        where = ".".join(str(p) for p in (index, field) if p is not None) or "body"
        super().__init__(f"{where}: {reason}")
        self.field = field
        self.reason = reason
        self.index = index

    def detail(self) -> dict[str, Any]:
        """One entry of the 422 `details` list (services.core.http format)."""
        entry: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.index is not None:
            entry["index"] = self.index
        return entry


@dataclass(frozen=True)
class InboundRequest:
    """A webhook request as the vendor signed it. `url` is the public URL (see `public_url`)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    now: datetime
    client_ip: str | None = None


@dataclass(frozen=True)
class MappingContext:
    """What every mapping needs of the delivery: the tenant's currency and the time it was received,
    and its time zone (IANA) for the vendor values that are a day, such as a deal's close date.
    What differs by vendor comes in the vendor's own options."""

    currency: str
    received_at: datetime
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)


@cache
def _zone(name: str) -> ZoneInfo:
    # Tenants' zones are checked where they are set (services/core/tenancy.py); a delivery is never
    # refused over one, which its vendor would only retry.
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@dataclass(frozen=True)
class VendorEvent:
    """A BuyerEvent plus the vendor identity of its rep, which the aggregator resolves to a rep_id."""

    event: BuyerEvent
    rep_alias: RepAlias | None = None


@dataclass(frozen=True)
class Normalised:
    events: list[VendorEvent]
    ignored: int
    entity_updates: list[EntityUpdate] = field(default_factory=list)
