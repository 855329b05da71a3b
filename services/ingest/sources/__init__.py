"""Vendor webhook adapters: one module per vendor, each pure (no I/O, no clock reads).

Every module exposes the same three steps, so a route can be written once:

    request = InboundRequest(method, public_url(...), headers, body, now, client_ip)
    module.verify(request, secret)          # SignatureError -> 401 (PayloadError -> 422 when the
                                            # credential sits in a body that cannot be parsed)
    payload = module.parse(request.body)    # PayloadError -> 422
    result = module.to_events(payload, MappingContext(currency=..., received_at=now))
    # result.events: list[VendorEvent]; result.ignored: int; result.entity_updates: list[EntityUpdate]

Salesforce also needs its SOAP acknowledgement as the answer body: `salesforce.ack_response()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from services.core.events import Source

from . import aircall, hubspot, salesforce, sendgrid, twilio
from .common import (
    EntityUpdate,
    InboundRequest,
    MappingContext,
    Normalised,
    PayloadError,
    SignatureError,
    VendorEvent,
    public_url,
)


class Adapter(Protocol):
    def verify(self, request: InboundRequest, secret: str) -> None: ...

    def parse(self, body: bytes) -> Any: ...

    def to_events(self, payload: Any, ctx: MappingContext) -> Normalised: ...


ADAPTERS: Mapping[Source, Adapter] = {
    Source.HUBSPOT: hubspot,
    Source.SALESFORCE: salesforce,
    Source.TWILIO: twilio,
    Source.AIRCALL: aircall,
    Source.SENDGRID: sendgrid,
}

__all__ = [
    "ADAPTERS",
    "Adapter",
    "EntityUpdate",
    "InboundRequest",
    "MappingContext",
    "Normalised",
    "PayloadError",
    "SignatureError",
    "VendorEvent",
    "public_url",
]
