"""The leads fold, pure part: per contact, lead creation, first touch, speed to lead, qualification and
first-touch channel, folded from the contact's events in whatever order they arrive. No I/O, no clock.

A contact's lead row (`leads`, written by leads_sql.py) holds:

- `created_at` / `created_event_id`: the earliest lead.created (ties: the smaller event id);
- `first_touch_at`, `speed_s`: the earliest call, email or meeting at or after `created_at`
  (`LeadSpeed`). Touches before it (prospecting before the contact became a lead) are ignored, so a
  speed is never negative, and a later lead.created does not restart the clock. When `created_at` is
  set or moves earlier, the first touch is looked up in the event archive (`resolve_first_touch`);
  afterwards a touch only matters if it falls between `created_at` and the current first touch;
- `channel`: the earliest lead.created naming a channel (`earliest_origin`), else the channel of the
  contact's CRM record; the demand report gives a deal without a channel of its own this channel
  (first-touch attribution, at read time);
- `mql_at` / `sql_at`: the earliest lead.qualified of each stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from services.core.crm import CrmUpdate
from services.core.events import EventType
from services.core.wire import Event

LEAD_CREATED: str = EventType.LEAD_CREATED.value
LEAD_QUALIFIED: str = EventType.LEAD_QUALIFIED.value
TOUCH_TYPES: frozenset[str] = frozenset(
    t.value for t in (EventType.CALL_COMPLETED, EventType.EMAIL_SENT, EventType.MEETING_BOOKED)
)
# The types that make a contact a lead (give it a row); touches alone do not.
ROWED_TYPES = frozenset({LEAD_CREATED, LEAD_QUALIFIED})
FOLDED_TYPES = TOUCH_TYPES | ROWED_TYPES
_MILLI = Decimal("0.001")

Contact = tuple[str, str]  # tenant, contact_id


# --- speed to lead --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadSpeed:
    """Speed-to-lead state of one contact: its lead's creation and the first touch at or after it."""

    created_at: datetime | None = None
    first_touch: datetime | None = None

    @property
    def speed_s(self) -> float | None:
        if self.created_at is None or self.first_touch is None:
            return None
        return (self.first_touch - self.created_at).total_seconds()


def fold_touch(state: LeadSpeed, occurred_at: datetime) -> LeadSpeed:
    """Fold one touch: it becomes the first touch if it is at or after the creation and earlier."""
    _aware(occurred_at)
    if state.created_at is None or occurred_at < state.created_at:
        return state
    if state.first_touch is not None and state.first_touch <= occurred_at:
        return state
    return LeadSpeed(state.created_at, occurred_at)


def resolve_first_touch(state: LeadSpeed, found: datetime | None) -> LeadSpeed:
    """Complete the state with the earliest touch the archive holds at or after the creation (or None)."""
    if state.created_at is None:
        raise ValueError("nothing to resolve before the lead's creation is known")
    if found is None:
        return state
    if found < state.created_at:
        raise ValueError("the first touch cannot precede the lead's creation")
    first = found if state.first_touch is None else min(state.first_touch, found)
    return LeadSpeed(state.created_at, first)


# --- first-touch attribution ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeadOrigin:
    """The lead.created a contact's deals are attributed to."""

    occurred_at: datetime
    event_id: str
    channel: str


def earliest_origin(
    current: LeadOrigin | None, occurred_at: datetime, event_id: str, channel: str | None
) -> LeadOrigin | None:
    """Fold one lead.created of the contact into its origin: the earliest lead that names a channel.

    A lead without a channel cannot attribute anything, so it never displaces one that can. Ties
    on time go to the smaller event id, so the result does not depend on arrival order.
    """
    _aware(occurred_at)
    if channel is None:
        return current
    if current is None or (occurred_at, event_id) < (current.occurred_at, current.event_id):
        return LeadOrigin(occurred_at, event_id, channel)
    return current


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")


# --- one contact's lead ---------------------------------------------------------------------------


@dataclass(slots=True)
class Lead:
    tenant: str
    contact_id: str
    speed: LeadSpeed
    created: tuple[datetime, str] | None
    origin: LeadOrigin | None
    mql_at: datetime | None
    sql_at: datetime | None
    loaded: tuple[Any, ...] | None  # the row as read, to leave unchanged rows alone; None: no row yet

    @classmethod
    def new(cls, tenant: str, contact_id: str) -> Lead:
        return cls(tenant, contact_id, LeadSpeed(), None, None, None, None, None)


def by_contact(
    events: Iterable[Event], updates: Iterable[CrmUpdate]
) -> tuple[dict[Contact, list[Event]], set[Contact]]:
    """The batch's events this fold reads, by contact, and the contacts that are (or become) leads:
    those with a lead.created, a lead.qualified or a CRM channel."""
    found: dict[Contact, list[Event]] = {}
    rowed: set[Contact] = set()
    for e in events:
        if e.contact_id is not None and e.type in FOLDED_TYPES:
            found.setdefault((e.tenant, e.contact_id), []).append(e)
            if e.type in ROWED_TYPES:
                rowed.add((e.tenant, e.contact_id))
    for u in updates:
        if u.entity == "contact" and u.property == "channel":
            found.setdefault((u.tenant, u.entity_id), [])
            rowed.add((u.tenant, u.entity_id))
    return found, rowed


def fold_contact(lead: Lead, events: Sequence[Event]) -> bool:
    """Fold a contact's events of the batch; True when its creation moved and the first touch must
    be looked up in the archive (which then also answers for the batch's touches)."""
    created_before = lead.created
    for e in events:
        at = e.occurred_at
        if e.type == LEAD_CREATED:
            if lead.created is None or (at, e.event_id) < lead.created:
                lead.created = (at, e.event_id)
            lead.origin = earliest_origin(lead.origin, at, e.event_id, e.channel)
        elif e.type == LEAD_QUALIFIED:
            if e.stage == "mql":
                lead.mql_at = at if lead.mql_at is None else min(lead.mql_at, at)
            elif e.stage == "sql":
                lead.sql_at = at if lead.sql_at is None else min(lead.sql_at, at)
    if lead.created is not None and (created_before is None or lead.created[0] < created_before[0]):
        lead.speed = LeadSpeed(lead.created[0])
        return True
    # Only a touch between the creation and the current first touch moves the first touch.
    for e in events:
        if e.type in TOUCH_TYPES:
            lead.speed = fold_touch(lead.speed, e.occurred_at)
    return False


def lead_row(lead: Lead, crm_channel: str | None) -> tuple[Any, ...]:
    """The `leads` row; `crm_channel` is the contact's CRM channel, used when no lead names one."""
    s, origin = lead.speed, lead.origin
    channel = origin.channel if origin is not None else crm_channel
    speed = None if s.created_at is None or s.first_touch is None else _seconds(s.first_touch - s.created_at)
    return (
        lead.tenant,
        lead.contact_id,
        s.created_at,
        lead.created[1] if lead.created is not None else None,
        channel,
        origin.occurred_at if origin is not None else None,
        origin.event_id if origin is not None else None,
        s.first_touch,
        speed,
        lead.mql_at,
        lead.sql_at,
    )


def _seconds(delta: timedelta) -> Decimal:
    whole = Decimal(delta.days * 86_400 + delta.seconds)
    return (whole + Decimal(delta.microseconds).scaleb(-6)).quantize(_MILLI)
