"""Tenants, their per-source secrets and API keys: all SQL of the tenancy domain."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar
from zoneinfo import available_timezones

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core import limits
from services.core.events import Source
from services.core.models import ApiKey, Tenant, TenantSecret
from services.core.secrets import (
    Keyring,
    decrypt_secret,
    encrypt_secret,
    key_matches,
    new_api_key,
    parse_key_prefix,
)

SCOPES = frozenset(
    {
        "ingest",
        "reps:write",
        "metrics:read",
        "coaching:read",
        "conversations:read",
        "hiring:read",
        "hiring:write",
        "training:read",
        "demand:read",
        "demand:write",
        "pipeline:read",
        "pipeline:write",
        "economics:read",
        "economics:write",
        "admin",
    }
)
# Each vendor's secret is stored under its source name; `webhooks` is the Standard Webhooks signing secret.
SECRET_SOURCES = frozenset({source.value for source in Source if source is not Source.API} | {"webhooks"})


@dataclass(frozen=True)
class TenantInfo:
    slug: str
    currency: str
    timezone: str


@dataclass(frozen=True)
class KeyInfo:
    prefix: str
    tenant: str
    scopes: frozenset[str]


class TenancyError(ValueError):
    pass


@functools.cache
def _iana_names() -> frozenset[str]:
    # More files load in Python than are IANA names, and PostgreSQL knows none of the others:
    # `posixrules`, the `posix/` and `right/` copies, and the host's own `localtime`.
    return frozenset(available_timezones() - {"localtime"})


def validate_timezone(name: str) -> str:
    """`name` if it is an IANA timezone name of Python's timezone database; `zone_is_known` asks the
    database's, which may be older."""
    if name not in _iana_names():
        raise TenancyError(f"unknown IANA timezone {name!r}")
    return name


def zone_is_known_sql(zone: str) -> str:
    """SQL, true when PostgreSQL knows the timezone named by the text expression `zone`, else false,
    never an error. `pg_input_is_valid` (PostgreSQL 16+) parses a time in that zone without raising.
    A time may also end with words that are no zone (BC, Mon, ...); unlike a zone, those may follow
    "UTC", which the second parse tells apart. It agrees with `timezone()` on every name Python
    loads (tests/security/test_inputs.py)."""
    return (
        f"({zone} ~ '^[A-Za-z][A-Za-z0-9_+/-]*$'"
        f" AND pg_input_is_valid('2000-01-01 00:00 ' || {zone}, 'timestamptz')"
        f" AND NOT pg_input_is_valid('2000-01-01 00:00 UTC ' || {zone}, 'timestamptz'))"
    )


def known_zone_sql(zone: str) -> str:
    """SQL: the timezone named by the text expression `zone`, or 'UTC' when PostgreSQL does not know it
    (a zone stored before it was checked), as the aggregator folds a zone it cannot load."""
    return f"CASE WHEN {zone_is_known_sql(zone)} THEN {zone} ELSE 'UTC' END"


async def zone_is_known(conn: AsyncConnection, name: str) -> bool:
    """Whether the database knows the timezone `name` (its timezone database may be older than Python's)."""
    return bool(await conn.scalar(text(f"SELECT {zone_is_known_sql('(:zone)::text')}"), {"zone": name}))


async def create_tenant(engine: AsyncEngine, slug: str, currency: str, timezone: str) -> None:
    try:
        limits.tenant_slug(slug)
    except limits.Invalid as exc:
        raise TenancyError(f"a tenant slug {exc.reason}; not {slug!r}") from None
    if len(currency) != 3 or not currency.isalpha():
        raise TenancyError("currency must be an ISO 4217 code such as USD")
    validate_timezone(timezone)
    async with engine.begin() as conn:
        if not await zone_is_known(conn, timezone):
            raise TenancyError(f"unknown IANA timezone {timezone!r}")
        row = await conn.execute(
            insert(Tenant)
            .values(slug=slug, currency=currency.upper(), timezone=timezone)
            .on_conflict_do_nothing()
            .returning(Tenant.slug)
        )
        if row.first() is None:
            raise TenancyError(f"tenant {slug!r} exists already")


async def get_tenant(engine: AsyncEngine, slug: str) -> TenantInfo | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(Tenant).where(Tenant.slug == slug))).first()
    return TenantInfo(row.slug, row.currency, row.timezone) if row else None


async def set_secret(
    engine: AsyncEngine, secret_key: Keyring | str, tenant: str, source: str, value: str
) -> None:
    if source not in SECRET_SOURCES:
        raise TenancyError(f"source must be one of {', '.join(sorted(SECRET_SOURCES))}")
    if await get_tenant(engine, tenant) is None:
        raise TenancyError(f"no tenant {tenant!r}")
    ciphertext = encrypt_secret(secret_key, value)
    stmt = insert(TenantSecret).values(tenant=tenant, source=source, ciphertext=ciphertext)
    async with engine.begin() as conn:
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[TenantSecret.tenant, TenantSecret.source],
                set_={"ciphertext": ciphertext, "updated_at": datetime.now(UTC)},
            )
        )


async def get_secret(engine: AsyncEngine, secret_key: Keyring | str, tenant: str, source: str) -> str | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(TenantSecret.ciphertext).where(
                    TenantSecret.tenant == tenant, TenantSecret.source == source
                )
            )
        ).first()
    return decrypt_secret(secret_key, row.ciphertext) if row else None


@dataclass(frozen=True)
class Reencrypted:
    """What `reencrypt_secrets` did: rows re-encrypted, rows already current, rows no key could read."""

    rotated: int
    current: int
    unreadable: list[tuple[str, str]]


async def reencrypt_secrets(engine: AsyncEngine, keys: Keyring) -> Reencrypted:
    """Every tenant secret encrypted under the current key (v2), in one transaction. A row no key of the
    ring can read is left as it is and reported, (tenant, source)."""
    rotated, current, unreadable = 0, 0, []
    async with engine.begin() as conn:
        rows = (await conn.execute(select(TenantSecret).with_for_update())).all()
        for row in rows:
            if keys.is_current(row.ciphertext):
                current += 1
                continue
            try:
                value = keys.decrypt(row.ciphertext)
            except ValueError:
                unreadable.append((row.tenant, row.source))
                continue
            await conn.execute(
                update(TenantSecret)
                .where(TenantSecret.tenant == row.tenant, TenantSecret.source == row.source)
                .values(ciphertext=keys.encrypt(value))
            )
            rotated += 1
    return Reencrypted(rotated, current, sorted(unreadable))


async def create_key(engine: AsyncEngine, tenant: str, scopes: list[str]) -> str:
    unknown = set(scopes) - SCOPES
    if unknown or not scopes:
        raise TenancyError(f"scopes must be among {', '.join(sorted(SCOPES))}")
    if await get_tenant(engine, tenant) is None:
        raise TenancyError(f"no tenant {tenant!r}")
    key, prefix, key_hash = new_api_key()
    async with engine.begin() as conn:
        await conn.execute(
            insert(ApiKey).values(prefix=prefix, tenant=tenant, key_hash=key_hash, scopes=sorted(set(scopes)))
        )
    return key


async def revoke_key(engine: AsyncEngine, prefix: str) -> bool:
    prefix = parse_key_prefix(prefix) or prefix
    async with engine.begin() as conn:
        result = await conn.execute(
            update(ApiKey)
            .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
            .returning(ApiKey.prefix)
        )
        return result.first() is not None


async def lookup_key(engine: AsyncEngine, key: str) -> KeyInfo | None:
    prefix = parse_key_prefix(key)
    if prefix is None:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)))
        ).first()
    if row is None or not key_matches(key, row.key_hash):
        return None
    return KeyInfo(row.prefix, row.tenant, frozenset(row.scopes))


K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """A small time-bounded cache: revocations and secret changes take effect within `ttl_s`.

    At most `max_items` entries: a full cache drops the entry written longest ago, so a flood of new
    keys pushes out old entries one by one rather than every entry at once.
    """

    def __init__(self, ttl_s: float, max_items: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_items = max_items
        self._items: dict[K, tuple[float, V]] = {}  # in the order written (dicts keep it)

    def get(self, key: K) -> tuple[bool, V | None]:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: K, value: V) -> None:
        items = self._items
        items.pop(key, None)
        if len(items) >= self.max_items:
            del items[next(iter(items))]
        items[key] = (time.monotonic() + self.ttl_s, value)
