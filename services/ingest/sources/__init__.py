"""Vendor webhook adapters: one module per vendor, each pure (no I/O, no clock reads), each exporting
one `Vendor` record (registry.py), all of them listed in `VENDORS`.

A route runs every vendor through the same steps (services/ingest/webhooks.py):

    request = InboundRequest(method, public_url(...), headers, body, now, client_ip)
    vendor.verify(request, secret, options)   # SignatureError -> 401 (PayloadError -> 422 when the
                                              # credential sits in a body that cannot be parsed)
    payload = vendor.parse(request.body)      # PayloadError -> 422
    result = vendor.map(payload, MappingContext(currency=..., received_at=now), options)
    # result.events: list[VendorEvent]; result.ignored: int; result.entity_updates: list[EntityUpdate]
    vendor.answer.body(accepted, result.ignored)

Adding a vendor: a module exporting `VENDOR`, and its entry below.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.core.events import Source
from services.core.source_settings import OptionSet

from . import aircall, fathom, hubspot, salesforce, sendgrid, stripe, twilio
from .registry import Vendor

VENDORS: tuple[Vendor[Any, Any], ...] = (
    hubspot.VENDOR,
    salesforce.VENDOR,
    twilio.VENDOR,
    aircall.VENDOR,
    sendgrid.VENDOR,
    stripe.VENDOR,
    fathom.VENDOR,
)
BY_SOURCE: Mapping[Source, Vendor[Any, Any]] = {vendor.source: vendor for vendor in VENDORS}


def option_sets() -> dict[str, OptionSet]:
    """The options each vendor takes (`salesloop tenants set-option`), by source name."""
    return {vendor.source.value: vendor.settings for vendor in VENDORS if vendor.settings is not None}
