"""Per-tenant vendor options (`tenant_source_settings`): how an option is parsed, checked and stored.

Options change how a vendor's payloads are verified or mapped, e.g. which HubSpot deal stages mean
won. Each vendor declares the options it takes as an `OptionSet` beside its adapter
(services/ingest/sources); this module knows no vendor. An operator sets them with
`salesloop tenants set-option SLUG SOURCE KEY VALUE`; the ingest service reads them through
`OptionsCache`, so a change takes effect within SALESLOOP_AUTH_CACHE_TTL_S. Rows are JSON objects
holding only the options that were set; anything not set keeps the vendor's default.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.events import Channel
from services.core.models import TenantSourceSettings
from services.core.tenancy import TtlCache, get_tenant

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ITEMS = 100
MAX_ITEM_CHARS = 200
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_CHANNEL_NAMES = frozenset(c.value for c in Channel)
_CHANNELS = ", ".join(c.value for c in Channel)


class SourceSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Option:
    """One option: `parse` turns the operator's text into the stored JSON value, `load` turns that
    into the value the vendor's options hold (TypeError or ValueError when a row was edited badly)."""

    parse: Callable[[str], Any]
    load: Callable[[Any], Any]
    help: str


@dataclass(frozen=True)
class OptionSet:
    """The options one vendor takes. `disjoint` names two list options that may share no value
    (a stage cannot mean both won and lost), compared case-insensitively when `fold_case`."""

    options: Mapping[str, Option]
    disjoint: tuple[str, str] | None = None
    fold_case: bool = False

    @classmethod
    def of(cls, options_type: type, **rules: Any) -> OptionSet:
        """The options of a vendor's options dataclass: its fields declared with `setting`."""
        declared = {f.name: f.metadata["option"] for f in fields(options_type) if "option" in f.metadata}
        return cls(declared, **rules)

    def parse(self, source: str, key: str, value: str) -> Any | None:
        """The stored JSON value for `value`, or None for an empty value (back to the default)."""
        option = self.options.get(key)
        if option is None:
            raise SourceSettingsError(f"{source} options are: {', '.join(self.options)}")
        if not value.strip():
            return None
        try:
            return option.parse(value)
        except SourceSettingsError as exc:
            raise SourceSettingsError(f"{source} {key}: {exc}") from None

    def check(self, stored: Mapping[str, Any]) -> None:
        """Rules across options: no value in both options of `disjoint`."""
        if self.disjoint is None:
            return
        first, second = self.disjoint

        def values(key: str) -> set[str]:
            return {s.lower() if self.fold_case else s for s in stored.get(key) or ()}

        both = values(first) & values(second)
        if both:
            raise SourceSettingsError(f"{sorted(both)[0]!r} cannot be in both {first} and {second}")

    def load(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The typed values of the stored options, by key. Tolerant of rows edited by hand: a
        malformed or unknown option is left out (so it keeps its default) and logged."""
        values: dict[str, Any] = {}
        for key, value in stored.items():
            option = self.options.get(key)
            try:
                if option is None:
                    raise KeyError(key)
                values[key] = option.load(value)
            except (TypeError, ValueError, KeyError):
                log.warning("ignoring malformed source option", extra={"option": key})
        return values


# The fields of a vendor's options dataclass that a tenant may set (collected by `OptionSet.of`):
# each names the option's type, help and default once.


def strings(help: str, *default: str) -> Any:
    """Comma-separated values, a frozenset."""
    return _setting(Option(_items, _string_set, help), frozenset(default))


def flag(help: str, default: bool = False) -> Any:
    return _setting(Option(_boolean, _flag, help), default)


def networks(help: str) -> Any:
    """IP addresses or CIDR networks, a tuple of normalised networks; none by default."""
    return _setting(Option(_networks, _network_tuple, help), ())


def channel_map(values: str) -> Any:
    """VENDOR_VALUE=channel pairs mapping the vendor's lead-source `values` onto channels, a mapping
    onto `Channel`; empty by default."""
    option = Option(_channel_map, _channel_mapping, f"{values}=channel pairs, comma-separated")
    return field(default_factory=dict, metadata={"option": option})


def _setting(option: Option, default: Any) -> Any:
    return field(default=default, metadata={"option": option})


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


def _string_set(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("must be a list of strings")
    return frozenset(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("must be a boolean")
    return value


def _network_tuple(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("must be a list")
    return tuple(str(ipaddress.ip_network(v, strict=False)) for v in value)


def _channel_mapping(value: Any) -> dict[str, Channel]:
    if not isinstance(value, dict):
        raise TypeError("must be an object")
    return {str(k): Channel(v) for k, v in value.items()}


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


async def load_settings(engine: AsyncEngine, tenant: str, source: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        stored = await conn.scalar(select(TenantSourceSettings.settings).where(*_row(tenant, source)))
    return dict(stored or {})


def _row(tenant: str, source: str) -> tuple[ColumnElement[bool], ...]:
    return TenantSourceSettings.tenant == tenant, TenantSourceSettings.source == source


async def set_option(
    engine: AsyncEngine,
    tenant: str,
    source: str,
    key: str,
    value: str,
    option_sets: Mapping[str, OptionSet],
) -> dict[str, Any]:
    """Set (or, for an empty value, unset) one option of `source`, which takes the options
    `option_sets[source]`; returns every option now set for the source."""
    options = option_sets.get(source)
    if options is None:
        raise SourceSettingsError(
            f"{source!r} has no options; sources with options: {', '.join(option_sets)}"
        )
    parsed = options.parse(source, key, value)
    if await get_tenant(engine, tenant) is None:
        raise SourceSettingsError(f"no tenant {tenant!r}")
    where = _row(tenant, source)
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
        options.check(merged)
        await conn.execute(
            update(TenantSourceSettings).where(*where).values(settings=merged, updated_at=datetime.now(UTC))
        )
    return merged


class OptionsCache:
    """Source options as the ingest service sees them, briefly cached like keys and secrets."""

    def __init__(self, engine: AsyncEngine, ttl_s: float) -> None:
        self._engine = engine
        self._cache: TtlCache[tuple[str, str], object] = TtlCache(ttl_s)

    async def get(self, tenant: str, source: str, build: Callable[[Mapping[str, Any]], T]) -> T:
        """`build` (the vendor's, always the same for one source) turns the stored options into the
        vendor's typed options; what it built is what is cached."""
        hit, options = self._cache.get((tenant, source))
        if hit:
            return cast(T, options)
        built = build(await load_settings(self._engine, tenant, source))
        self._cache.put((tenant, source), built)
        return built
