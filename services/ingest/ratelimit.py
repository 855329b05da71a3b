"""Per-tenant rate limits: a token bucket over events, kept in this ingest process.

Events are counted, not requests: a batch of 1000 takes 1000 tokens. The buckets live in memory, so
with N ingest replicas behind a load balancer a tenant may send N times the configured rate; set
`SALESLOOP_RATE_LIMIT_EVENTS_PER_S` to one replica's share. 0 turns the limit off.

Every ingest route applies it the same way once the tenant is authenticated: `check` before reading a
body (a tenant already over its limit costs no parsing), `admit` once the number of events is known.
Routes call `limiter_of(request.app)`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from starlette.applications import Starlette

from services.core.http import ApiError
from services.core.settings import Settings, get_settings
from services.ingest import metrics

log = logging.getLogger(__name__)


class TokenBucket:
    """`rate` tokens per second up to `burst`. A request larger than the burst is let through when the
    bucket is full and leaves it in debt, so it is neither refused forever nor faster than the rate."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = now

    def _refill(self, now: float) -> None:
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_s(self, n: int, now: float) -> float:
        """Seconds until `n` events would be admitted (0: now). Takes nothing."""
        self._refill(now)
        need = min(n, self.burst)
        return 0.0 if self.tokens >= need else (need - self.tokens) / self.rate

    def take(self, n: int, now: float) -> float:
        """Admit `n` events and return 0, or return the seconds to wait and take nothing."""
        wait = self.wait_s(n, now)
        if wait == 0.0:
            self.tokens -= n
        return wait


class RateLimiter:
    def __init__(self, events_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.events_per_s = events_per_s
        self.burst = burst
        self._clock = clock
        # One bucket per authenticated tenant: bounded by the number of tenants.
        self._buckets: dict[str, TokenBucket] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(settings.rate_limit_events_per_s, settings.rate_limit_burst)

    @property
    def enabled(self) -> bool:
        return self.events_per_s > 0

    def _bucket(self, tenant: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(tenant)
        if bucket is None:
            bucket = self._buckets[tenant] = TokenBucket(self.events_per_s, self.burst, now)
        return bucket

    def check(self, tenant: str, source: str) -> None:
        """429 if the tenant could not send even one event now (before its body is read)."""
        if self.enabled:
            now = self._clock()
            wait = self._bucket(tenant, now).wait_s(1, now)
            if wait:
                raise self._refusal(tenant, source, 0, wait)

    def admit(self, tenant: str, events: int, source: str) -> None:
        """Take `events` tokens, or 429 with `Retry-After` and take none (nothing of it is accepted)."""
        if self.enabled:
            now = self._clock()
            wait = self._bucket(tenant, now).take(events, now)
            if wait:
                raise self._refusal(tenant, source, events, wait)

    def _refusal(self, tenant: str, source: str, events: int, wait_s: float) -> ApiError:
        if events:
            metrics.EVENTS_REJECTED.labels(source, "rate_limited").inc(events)
        retry_after = max(1, math.ceil(wait_s))
        return ApiError(
            429,
            "rate_limited",
            f"over the tenant's limit of {self.events_per_s:g} events per second (bursts up to"
            f" {self.burst}); retry after {retry_after} s, nothing of this request was accepted",
            headers={"Retry-After": str(retry_after)},
        )


def limiter_of(app: Starlette) -> RateLimiter:
    """The app's limiter (`app.state.rate_limiter`), made from the process settings on first use."""
    limiter: RateLimiter | None = getattr(app.state, "rate_limiter", None)
    if limiter is None:
        try:
            settings = get_settings()
        except ValueError:
            # An app built in-process with explicit settings and no limiter of its own: the defaults.
            settings = Settings(env="test")
        limiter = app.state.rate_limiter = RateLimiter.from_settings(settings)
    return limiter
