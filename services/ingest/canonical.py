"""The canonical body (one BuyerEvent or `{"events": [...]}`) to validated events. Pure: no I/O.

A batch is all-or-nothing: every bad field of every event is reported (`index` is the event's
position, 0 for a single event), and no event is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from services.core.events import BuyerEvent
from services.core.http import ApiError, validation_details

MAX_DETAILS = 100
# Deeper JSON cannot be serialised again (orjson stops at 254 levels) and no sane event needs it.
MAX_DEPTH = 32
# The archive and the rollups take event times from 1900 on; earlier ones are typos, not history.
MIN_YEAR = 1900
SERVICE_FIELDS = frozenset({"tenant", "source", "received_at", "rep_alias"})
_FIELDS = frozenset(BuyerEvent.model_fields)


class InvalidEvents(ApiError):
    """422: some events are invalid, so all `events` events of the request were refused."""

    def __init__(self, details: list[dict[str, Any]], bad_events: int, events: int) -> None:
        message = f"{bad_events} of {events} events are invalid; nothing was accepted"
        if len(details) > MAX_DETAILS:
            message += f" ({len(details)} problems, the first {MAX_DETAILS} are listed)"
        super().__init__(422, "invalid_event", message, details[:MAX_DETAILS])
        self.events = events


def events_from_payload(payload: Any, currency: str, max_events: int, body: bytes) -> list[BuyerEvent]:
    """Validate every event of `payload` (parsed from `body`) for a tenant reporting in `currency`."""
    objects = _unwrap(payload, max_events)
    # Cheap byte scans decide whether the slower structural checks are needed at all. A value nested
    # deeper than MAX_DEPTH needs more than MAX_DEPTH brackets of its own, besides the event's own
    # brace and a batch's wrapper (brackets inside strings only make the count larger).
    may_hold_nul = b"\\u0000" in body
    own_brackets = sum(isinstance(obj, dict) for obj in objects) + (2 if "events" in payload else 0)
    may_be_deep = body.count(b"{") + body.count(b"[") - own_brackets > MAX_DEPTH
    context = {"currency": currency, "now": datetime.now(UTC)}
    events: list[BuyerEvent] = []
    details: list[dict[str, Any]] = []
    bad_events = 0
    for i, obj in enumerate(objects):
        problems = _structural_problems(obj, may_hold_nul, may_be_deep)
        if not problems:
            try:
                event = BuyerEvent.model_validate(obj, context=context)
            except ValidationError as exc:
                problems = [_clarify(entry) for entry in validation_details(exc)]
            else:
                if event.occurred_at.year >= MIN_YEAR:
                    events.append(event)
                    continue
                problems = [{"field": "occurred_at", "reason": f"must not be before the year {MIN_YEAR}"}]
        bad_events += 1
        details.extend({"index": i, **entry} for entry in problems)
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
            [{"field": k, "reason": "Extra inputs are not permitted"} for k in extra[:MAX_DETAILS]],
        )
    events = payload["events"]
    if not isinstance(events, list):
        raise _bad_batch("events", "must be a list of events")
    if not events:
        raise _bad_batch("events", "must hold at least 1 event")
    if len(events) > max_events:
        raise _bad_batch("events", f"must hold at most {max_events} events, not {len(events)}")
    return events


def _structural_problems(obj: Any, may_hold_nul: bool, may_be_deep: bool) -> list[dict[str, Any]]:
    """Values JSON allows but the archive cannot keep faithfully: NUL characters and absurd nesting."""
    if not isinstance(obj, dict) or not (may_hold_nul or may_be_deep):
        return []
    problems = []
    for key, value in obj.items():
        if may_be_deep and isinstance(value, dict | list) and _depth_exceeds(value, MAX_DEPTH):
            problems.append({"field": str(key), "reason": f"must not be nested more than {MAX_DEPTH} levels"})
        elif may_hold_nul:
            path = _nul_path(value, str(key))
            if path is not None:
                problems.append({"field": path, "reason": "must not contain NUL (\\u0000) characters"})
    return problems


def _depth_exceeds(value: Any, limit: int) -> bool:
    if limit < 0:
        return True
    if isinstance(value, dict):
        return any(_depth_exceeds(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return any(_depth_exceeds(v, limit - 1) for v in value)
    return False


def _nul_path(value: Any, path: str) -> str | None:
    """The dotted path of the first string (value or key) holding a NUL character."""
    for sub_path, item in _walk(value, path):
        if isinstance(item, str) and "\x00" in item:
            return sub_path
    return None


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield path, k
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}.{i}")


def _clarify(entry: dict[str, Any]) -> dict[str, Any]:
    """Name the field behind cross-field rules and explain refused service-set fields."""
    field, reason = entry["field"], entry["reason"]
    if field is None and reason.startswith("Value error, "):
        first_word = reason.removeprefix("Value error, ").split(" ", 1)[0]
        if first_word in _FIELDS:
            entry["field"] = first_word
    elif field in SERVICE_FIELDS and reason == "Extra inputs are not permitted":
        entry["reason"] = "is set by the service and must not be sent"
    return entry


def _bad_batch(field: str | None, reason: str) -> ApiError:
    return ApiError(
        422,
        "invalid_batch",
        "the body is not one event or a batch of events",
        [{"field": field, "reason": reason}],
    )
