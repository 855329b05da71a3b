"""The canonical body (one BuyerEvent or `{"events": [...]}`) to validated events. Pure: no I/O.

Each event is checked by the wire format's decoder (services.core.wire.check_event), the one the
aggregator folds with, so whatever is accepted here can be folded. A batch is all-or-nothing: every
bad field of every event is reported (`index` is the event's position, 0 for a single event), and
no event is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.core.events import CheckedEvent
from services.core.http import ApiError
from services.core.limits import MAX_DEPTH, UNKNOWN_FIELD
from services.core.wire import check_event

MAX_DETAILS = 100


class InvalidEvents(ApiError):
    """422: some events are invalid, so all `events` events of the request were refused."""

    def __init__(self, details: list[dict[str, Any]], bad_events: int, events: int) -> None:
        message = f"{bad_events} of {events} events are invalid; nothing was accepted"
        if len(details) > MAX_DETAILS:
            message += f" ({len(details)} problems, the first {MAX_DETAILS} are listed)"
        super().__init__(422, "invalid_event", message, details[:MAX_DETAILS])
        self.events = events


def events_from_payload(payload: Any, currency: str, max_events: int, body: bytes) -> list[CheckedEvent]:
    """Validate every event of `payload` (parsed from `body`) for a tenant reporting in `currency`."""
    objects = _unwrap(payload, max_events)
    # Cheap byte scans decide whether the slower walks through `attributes` are needed at all. A value
    # nested deeper than MAX_DEPTH needs more than MAX_DEPTH brackets of its own, besides the event's
    # own brace and a batch's wrapper (brackets inside strings only make the count larger).
    nul = b"\\u0000" in body
    own_brackets = sum(isinstance(obj, dict) for obj in objects) + (2 if "events" in payload else 0)
    deep = body.count(b"{") + body.count(b"[") - own_brackets > MAX_DEPTH
    now = datetime.now(UTC)
    events: list[CheckedEvent] = []
    details: list[dict[str, Any]] = []
    bad_events = 0
    for i, obj in enumerate(objects):
        checked = check_event(obj, now=now, currency=currency, nul=nul, deep=deep)
        if isinstance(checked, CheckedEvent):
            events.append(checked)
            continue
        bad_events += 1
        details.extend({"index": i, "field": p.field, "reason": p.reason} for p in checked)
    if details:
        raise InvalidEvents(details, bad_events, len(objects))
    return events


def _unwrap(payload: Any, max_events: int) -> list[Any]:
    if not isinstance(payload, dict):
        raise _bad_batch(None, 'the body must be a JSON object: one event or {"events": [...]}')
    if "events" not in payload:
        return [payload]
    extra = sorted(k for k in payload if k != "events")
    if extra:
        raise ApiError(
            422,
            "invalid_batch",
            "a batch carries only `events`",
            [{"field": k, "reason": UNKNOWN_FIELD} for k in extra[:MAX_DETAILS]],
        )
    events = payload["events"]
    if not isinstance(events, list):
        raise _bad_batch("events", "must be a list of events")
    if not events:
        raise _bad_batch("events", "must hold at least 1 event")
    if len(events) > max_events:
        raise _bad_batch("events", f"must hold at most {max_events} events, not {len(events)}")
    return events


def _bad_batch(field: str | None, reason: str) -> ApiError:
    return ApiError(
        422,
        "invalid_batch",
        "the body is not one event or a batch of events",
        [{"field": field, "reason": reason}],
    )
