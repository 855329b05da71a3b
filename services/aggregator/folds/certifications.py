"""The certifications fold, pure part: every training.certification is an attempt (SPEC 5.4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.core.events import EventType
from services.core.wire import Event

CERTIFICATION: str = EventType.TRAINING_CERTIFICATION.value


def attempt_rows(events: Iterable[Event]) -> list[tuple[Any, ...]]:
    """`certification_attempts` rows (tenant, event_id, rep_id, module, score, passed, occurred_at).

    Ingest refuses a certification without module or passed; one from an older message is skipped.
    """
    return [
        (e.tenant, e.event_id, e.rep_id, e.module, e.score, e.passed, e.occurred_at)
        for e in events
        if e.type == CERTIFICATION and e.module is not None and e.passed is not None
    ]
