"""Request authentication shared by ingest and api: API keys and tenant look-ups, briefly cached.

Caching keeps the hot path off the database; the TTL bounds how long a revoked key or a changed
secret keeps working (SALESLOOP_AUTH_CACHE_TTL_S, default 5 s). What a client without a key can make
it keep is bounded: a token that cannot be a key is refused without a look-up, keys are cached by
their hash, and every cache holds a bounded number of entries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.http import ApiError, database_unavailable
from services.core.secrets import Keyring, hash_key, parse_key_prefix
from services.core.tenancy import KeyInfo, TenantInfo, TtlCache, get_secret, get_tenant, lookup_key

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

# Keys are `sl_<12 hex digits>_<43 URL-safe characters>`, 59 characters (secrets.new_api_key).
MAX_KEY_CHARS = 64


async def answered(lookup: Awaitable[T]) -> T:
    """A key, tenant or secret look-up; 503 with Retry-After while the database cannot answer (a
    server fault, never the sender's: it retries, and nothing was accepted)."""
    try:
        return await lookup
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("database unavailable for authentication; answering 503", extra={"error": repr(exc)})
        raise database_unavailable("credentials cannot be checked right now; retry later") from None


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def plausible_key(token: str) -> bool:
    """Whether `token` has the length and shape of a key: anything else is no key, and looked up never."""
    return len(token) <= MAX_KEY_CHARS and token.isascii() and parse_key_prefix(token) is not None


class Directory:
    """Keys, tenants and tenant secrets as one service sees them."""

    def __init__(self, engine: AsyncEngine, secret_key: Keyring | str, ttl_s: float) -> None:
        self._engine = engine
        self._secret_key = secret_key
        self._keys: TtlCache[str, KeyInfo | None] = TtlCache(ttl_s)  # by the key's hash
        self._tenants: TtlCache[str, TenantInfo | None] = TtlCache(ttl_s)
        self._secrets: TtlCache[tuple[str, str], str | None] = TtlCache(ttl_s)

    async def key(self, token: str) -> KeyInfo | None:
        if not plausible_key(token):
            return None
        return await _cached(self._keys, hash_key(token), lambda: lookup_key(self._engine, token))

    async def tenant(self, slug: str) -> TenantInfo | None:
        return await _cached(self._tenants, slug, lambda: get_tenant(self._engine, slug))

    async def secret(self, tenant: str, source: str) -> str | None:
        """The tenant's secret for `source`, None if none is set.

        A stored secret that cannot be decrypted (SALESLOOP_SECRET_KEY changed) answers 503 with
        Retry-After rather than 401: senders keep retrying while an operator restores the key or sets
        the secret again, so no delivery is lost to a configuration mistake.
        """
        hit, value = self._secrets.get((tenant, source))
        if not hit:
            try:
                value = await answered(get_secret(self._engine, self._secret_key, tenant, source))
            except ValueError as exc:
                log.error("tenant secret cannot be decrypted", extra={"tenant": tenant, "source": source})
                raise ApiError(
                    503,
                    "secret_unavailable",
                    "this tenant's signing secret cannot be read right now; retry later",
                    headers={"Retry-After": "60"},
                ) from exc
            self._secrets.put((tenant, source), value)
        return value


async def _cached(cache: TtlCache[K, V], key: K, load: Callable[[], Awaitable[V]]) -> V | None:
    """The cached answer for `key`, else `load()`'s (a database outage answers 503), cached."""
    hit, value = cache.get(key)
    if not hit:
        value = await answered(load())
        cache.put(key, value)
    return value
