"""What routes get from the app: its long-lived resources, as named `Annotated` dependencies.

Each dependency FastAPI resolves costs measurable CPU per request, so a hot route takes the one
`IngestDep` (everything at once) rather than several small ones.
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


# Coroutines on purpose: plain functions would be sent to the thread pool on every request.
async def _ingest(request: Request) -> Ingest:
    ingest: Ingest = request.app.state.ingest
    return ingest


async def _directory(request: Request) -> Directory:
    return (await _ingest(request)).directory


async def _producer(request: Request) -> EventProducer:
    return (await _ingest(request)).producer


IngestDep = Annotated[Ingest, Depends(_ingest)]
DirectoryDep = Annotated[Directory, Depends(_directory)]
ProducerDep = Annotated[EventProducer, Depends(_producer)]
