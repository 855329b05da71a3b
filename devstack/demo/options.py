"""What a demo load generates and where it sends it: built once by its caller (`salesloop demo`,
`salesloop dev --demo`, a test) and passed down unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

# The settings `salesloop dev` writes to dev.env that a demo load cannot do without.
REQUIRED_ENV = ("SALESLOOP_INGEST_URL", "SALESLOOP_API_URL", "SALESLOOP_INGEST_KEY", "SALESLOOP_API_KEY")


@dataclass(frozen=True)
class DemoOptions:
    """The organisation to generate, for which tenant, and how many requests to keep in flight.

    `end` is when the simulated period stops (default: today, 00:00 UTC); the same seed and end give
    the same events, ids included.
    """

    tenant: str = "demo"
    reps: int = 50
    days: int = 180
    seed: int = 7
    concurrency: int = 16
    end: datetime | None = None


@dataclass(frozen=True)
class Endpoints:
    """The running services and the keys to them. `webhook_secret` signs /v1/events (else the
    ingest key does)."""

    ingest_url: str
    api_url: str
    ingest_key: str
    api_key: str
    webhook_secret: str | None = None

    @classmethod
    def from_env(cls, values: Mapping[str, str]) -> Endpoints:
        """From SALESLOOP_* settings (dev.env's names); KeyError when one of REQUIRED_ENV is absent."""
        return cls(
            ingest_url=values["SALESLOOP_INGEST_URL"],
            api_url=values["SALESLOOP_API_URL"],
            ingest_key=values["SALESLOOP_INGEST_KEY"],
            api_key=values["SALESLOOP_API_KEY"],
            webhook_secret=values.get("SALESLOOP_WEBHOOK_SECRET") or None,
        )
