"""What routes get from the app: its long-lived resources and limits.

The data routes take no FastAPI dependencies (see `services.ingest.routing`): they call `ingest_of`.
The operations routes take named `Annotated` dependencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.core.auth import Directory
from services.core.kafka import EventProducer
from services.core.settings import Settings


@dataclass(frozen=True)
class Limits:
    """How much a request may send, and how slowly."""

    max_body_bytes: int
    max_batch_events: int
    body_read_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.max_body_bytes, settings.max_batch_events, settings.body_read_timeout_s)


@dataclass(frozen=True)
class Ingest:
    """The app's resources (created in the lifespan, stopped when it ends) and its limits."""

    directory: Directory
    producer: EventProducer
    limits: Limits


def ingest_of(request: Request) -> Ingest:
    """The app's resources (`app.state.ingest`, set by the lifespan)."""
    ingest: Ingest = request.app.state.ingest
    return ingest


# A coroutine on purpose: a plain function would be sent to the thread pool on every request.
async def _producer(request: Request) -> EventProducer:
    return ingest_of(request).producer


ProducerDep = Annotated[EventProducer, Depends(_producer)]
