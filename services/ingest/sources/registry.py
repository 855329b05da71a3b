"""What a vendor is to ingest: one `Vendor` record per vendor module, listed in `sources.VENDORS`.

The record holds everything the webhook route needs to know about a vendor, so the route is written
once and names none (services/ingest/webhooks.py): where it is served, which bodies it takes, how a
delivery is verified with the tenant's secret and the vendor's own options, how it is parsed and
mapped to BuyerEvents and CRM entity updates, what the vendor needs as the answer, and which facts its
events leave to CRM entity state. Adding a vendor is one module exporting `VENDOR` and one entry in
`sources.VENDORS`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Generic, TypeVar

import orjson

from services.core.events import Attribution, Source
from services.core.source_settings import OptionSet

from .common import InboundRequest, MappingContext, Normalised

PayloadT = TypeVar("PayloadT")  # the parsed payload
OptionsT = TypeVar("OptionsT")  # the vendor's typed options
JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    """The successful answer a vendor needs once the broker acknowledged the delivery."""

    status_code: int
    media_type: str
    description: str  # for the OpenAPI document
    body: Callable[[int, int], bytes]  # (accepted, ignored) -> body


def _counts(accepted: int, ignored: int) -> bytes:
    return orjson.dumps({"accepted": accepted, "ignored": ignored})


ACCEPTED = Answer(202, JSON, '`{"accepted": n, "ignored": m}`, once the broker acknowledged', _counts)


def random_secret() -> str:
    return secrets.token_urlsafe(32)


def no_options() -> None:
    """The options of a vendor that takes none."""
    return None


# eq=False: a vendor is one object, equal only to itself (and hashable, though its options are not).
@dataclass(frozen=True, eq=False)
class Vendor(Generic[PayloadT, OptionsT]):
    """One vendor. `verify` raises SignatureError (401), or PayloadError (422) when the credential
    sits in a body that cannot be parsed; `parse` and `map` raise PayloadError (422)."""

    source: Source
    name: str  # as people write it: "HubSpot"
    doc: str | None  # the vendor module's docstring: its first paragraph describes the route
    verify: Callable[[InboundRequest, str, OptionsT], None]
    parse: Callable[[bytes], PayloadT]
    map: Callable[[PayloadT, MappingContext, OptionsT], Normalised]
    _: KW_ONLY
    media_types: tuple[str, ...] = (JSON,)  # the Content-Types accepted (JSON: any application/*+json too)
    # The vendor's typed options: called with the loaded `settings` as keywords, or with none for
    # the defaults. `settings` is what `salesloop tenants set-option` takes for it.
    options: Callable[..., OptionsT] = no_options  # type: ignore[assignment]
    settings: OptionSet | None = None
    answer: Answer = ACCEPTED
    # A secret no tenant has, in the format of the vendor's secrets: checked when the tenant is
    # unknown or has no secret, so that refusal looks like any wrong signature.
    decoy: Callable[[], str] = random_secret
    # ValueError (saying what the secret should be) when a stored secret cannot be used at all.
    check_secret: Callable[[str], None] | None = None
    # For a credential the tool sends in the endpoint URL: what `salesloop tenants set-secret` stores for
    # the value it was given, and the query string to append to the route's URL in the tool.
    url_secret: Callable[[str], tuple[str, str]] | None = None
    # Set on every event and entity update of the vendor (services/core/events.py `Attribution`).
    attribution: Attribution | None = None
    defaults: OptionsT = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", self.options())

    @property
    def path(self) -> str:
        return f"/webhooks/{self.source.value}/{{tenant}}"

    @property
    def description(self) -> str:
        """What the route receives, for the OpenAPI document."""
        return " ".join((self.doc or self.name).split("\n\n")[0].split())

    def load_options(self, stored: Mapping[str, Any]) -> OptionsT:
        """The typed options from a tenant's stored settings; what is not set keeps its default."""
        return self.options(**self.settings.load(stored)) if self.settings is not None else self.defaults
