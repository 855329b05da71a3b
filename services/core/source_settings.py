"""Per-tenant vendor options (`tenant_source_settings`): what each option means, its parsing, its SQL.

Options change how a vendor's payloads are verified or mapped, e.g. which HubSpot deal stages mean
won. An operator sets them with `salesloop tenants set-option SLUG SOURCE KEY VALUE`; the ingest
service reads them through `OptionsCache`, so a change takes effect within SALESLOOP_AUTH_CACHE_TTL_S.
Rows are JSON objects holding only the options that were set; anything not set keeps its default.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.events import Channel
from services.core.models import TenantSourceSettings
from services.core.tenancy import TtlCache, get_tenant

log = logging.getLogger(__name__)

MAX_ITEMS = 100
MAX_ITEM_CHARS = 200
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_CHANNEL_NAMES = frozenset(c.value for c in Channel)
_CHANNELS = ", ".join(c.value for c in Channel)


class SourceSettingsError(ValueError):
    pass


def _items(value: str) -> list[str]:
    items = list(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
    if not items:
        raise SourceSettingsError("must name at least one value (comma-separated)")
    if len(items) > MAX_ITEMS:
        raise SourceSettingsError(f"must name at most {MAX_ITEMS} values")
    long = [item for item in items if len(item) > MAX_ITEM_CHARS]
    if long:
        raise SourceSettingsError(f"values must be at most {MAX_ITEM_CHARS} characters: {long[0][:40]!r}...")
    return items


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SourceSettingsError("must be true or false")


def _networks(value: str) -> list[str]:
    out = []
    for item in _items(value):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SourceSettingsError(f"{item!r} is not an IP address or CIDR network") from None
    return out


def _channel_map(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in _items(value):
        vendor_value, sep, channel = item.rpartition("=")
        if not sep or not vendor_value.strip():
            raise SourceSettingsError(f"{item!r} must be VENDOR_VALUE=channel")
        if channel.strip() not in _CHANNEL_NAMES:
            raise SourceSettingsError(f"{channel.strip()!r} is not a channel; channels: {_CHANNELS}")
        out[vendor_value.strip()] = channel.strip()
    return out


@dataclass(frozen=True)
class Option:
    """One option: `parse` turns the operator's text into the stored JSON value."""

    parse: Callable[[str], Any]
    help: str


_CHANNEL_HELP = "VENDOR_VALUE=channel pairs, comma-separated: lead-source values mapped onto a channel"
OPTIONS: Mapping[str, Mapping[str, Option]] = {
    "hubspot": {
        "won_stages": Option(_items, "deal stage ids that mean won (default: closedwon)"),
        "lost_stages": Option(_items, "deal stage ids that mean lost (default: closedlost)"),
        "legacy_signatures": Option(
            _boolean, "also accept v1/v2 signatures, which carry no timestamp (default: false)"
        ),
        "channel_overrides": Option(_channel_map, _CHANNEL_HELP + " (hs_analytics_source values)"),
    },
    "salesforce": {
        "mql_statuses": Option(_items, "Lead statuses that mean MQL (default: Marketing Qualified, MQL)"),
        "sql_statuses": Option(_items, "Lead statuses that mean SQL (default: Sales Qualified, SQL)"),
        "allowed_networks": Option(
            _networks, "IP addresses or CIDR networks Outbound Messages may come from (default: any)"
        ),
        "channel_overrides": Option(_channel_map, _CHANNEL_HELP + " (LeadSource values)"),
    },
}


def parse_option(source: str, key: str, value: str) -> Any | None:
    """The stored JSON value for `value`, or None for an empty value (back to the default)."""
    options = OPTIONS.get(source)
    if options is None:
        with_options = ", ".join(OPTIONS)
        raise SourceSettingsError(f"{source!r} has no options; sources with options: {with_options}")
    option = options.get(key)
    if option is None:
        raise SourceSettingsError(f"{source} options are: {', '.join(options)}")
    if not value.strip():
        return None
    try:
        return option.parse(value)
    except SourceSettingsError as exc:
        raise SourceSettingsError(f"{source} {key}: {exc}") from None


def format_option(value: Any | None) -> str:
    """A stored value the way `set-option` takes it (None: the default)."""
    if value is None:
        return "(default)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def check_consistent(source: str, stored: Mapping[str, Any]) -> None:
    """Rules across options of one source: a stage cannot mean both won and lost."""
    pairs = {"hubspot": ("won_stages", "lost_stages"), "salesforce": ("mql_statuses", "sql_statuses")}
    if source not in pairs:
        return
    first, second = pairs[source]
    # Salesforce statuses are compared case-insensitively, HubSpot stage ids exactly.
    folded = source == "salesforce"

    def values(key: str) -> set[str]:
        return {s.lower() if folded else s for s in stored.get(key) or ()}

    both = values(first) & values(second)
    if both:
        raise SourceSettingsError(f"{sorted(both)[0]!r} cannot be in both {first} and {second}")


@dataclass(frozen=True)
class SourceOptions:
    """The typed options of one tenant and source; None means the adapter's default."""

    won_stages: frozenset[str] | None = None
    lost_stages: frozenset[str] | None = None
    legacy_signatures: bool = False
    mql_statuses: frozenset[str] | None = None
    sql_statuses: frozenset[str] | None = None
    allowed_networks: tuple[str, ...] = ()
    channel_overrides: Mapping[str, Channel] = field(default_factory=dict)

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> SourceOptions:
        """Tolerant of rows edited by hand: a malformed option keeps its default and is logged."""
        values: dict[str, Any] = {}
        for key, value in stored.items():
            try:
                values[key] = _typed(key, value)
            except (TypeError, ValueError, KeyError):
                log.warning("ignoring malformed source option", extra={"option": key})
        return cls(**values)


def _typed(key: str, value: Any) -> Any:
    if key in ("won_stages", "lost_stages", "mql_statuses", "sql_statuses"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(key)
        return frozenset(value)
    if key == "legacy_signatures":
        if not isinstance(value, bool):
            raise TypeError(key)
        return value
    if key == "allowed_networks":
        if not isinstance(value, list):
            raise TypeError(key)
        return tuple(str(ipaddress.ip_network(v, strict=False)) for v in value)
    if key == "channel_overrides":
        if not isinstance(value, dict):
            raise TypeError(key)
        return {str(k): Channel(v) for k, v in value.items()}
    raise KeyError(key)


async def load_settings(engine: AsyncEngine, tenant: str, source: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(TenantSourceSettings.settings).where(
                    TenantSourceSettings.tenant == tenant, TenantSourceSettings.source == source
                )
            )
        ).scalar()
    return dict(stored or {})


async def set_option(engine: AsyncEngine, tenant: str, source: str, key: str, value: str) -> dict[str, Any]:
    """Set (or, for an empty value, unset) one option; returns every option now set for the source."""
    parsed = parse_option(source, key, value)
    if await get_tenant(engine, tenant) is None:
        raise SourceSettingsError(f"no tenant {tenant!r}")
    where = (TenantSourceSettings.tenant == tenant, TenantSourceSettings.source == source)
    async with engine.begin() as conn:
        await conn.execute(
            insert(TenantSourceSettings)
            .values(tenant=tenant, source=source, settings={})
            .on_conflict_do_nothing()
        )
        # The row lock serialises concurrent changes of one source's options (no lost updates).
        current = (
            await conn.execute(select(TenantSourceSettings.settings).where(*where).with_for_update())
        ).scalar()
        merged = {k: v for k, v in (current or {}).items() if k != key}
        if parsed is not None:
            merged[key] = parsed
        check_consistent(source, merged)
        await conn.execute(
            update(TenantSourceSettings).where(*where).values(settings=merged, updated_at=datetime.now(UTC))
        )
    return merged


class OptionsCache:
    """Source options as the ingest service sees them, briefly cached like keys and secrets."""

    def __init__(self, engine: AsyncEngine, ttl_s: float) -> None:
        self._engine = engine
        self._cache: TtlCache[tuple[str, str], SourceOptions] = TtlCache(ttl_s)

    async def get(self, tenant: str, source: str) -> SourceOptions:
        hit, options = self._cache.get((tenant, source))
        if hit and options is not None:
            return options
        options = SourceOptions.from_stored(await load_settings(self._engine, tenant, source))
        self._cache.put((tenant, source), options)
        return options
