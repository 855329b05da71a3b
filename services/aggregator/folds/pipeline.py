"""The pipeline fold, pure part: each deal's history in event time (SPEC 5.8). No I/O, no clock.

Every deal event and every CRM update of a deal becomes rows of the deal's change set
(`deal_changes`): its creation, each stage it was put in, its amount, close date, forecast category,
owner and contact, its win or loss. A deal's derived rows (`pipeline_deals`, `deal_stage_stays`) are a
function of its whole change set, recomputed whenever a batch brings the deal a change, so they do
not depend on the order the changes arrived in nor on how the stream was cut into batches.

The history, walking the changes in time order (at one instant: the creation first, a win or loss
last, otherwise by change id):

- a stage change enters that stage, unless the deal is open and already in it (several sources report
  one move) or it names the stage the deal was won or lost with, which closes the deal so (a CRM's
  "Closed Won" beside the win, and the win of a deal reopened and won again, whose event a CRM names
  once per deal);
  a stage the deal skipped is never entered; a stage entered again later is a new stay;
- a stay completes when the deal enters another stage, is won or is lost (`left_at`, `next`);
- a win or a loss closes the deal (`status`, `closed_at`; of several closes in a row, the first of the
  last kind); a stage change after the close reopens it;
- amount, close date, forecast category and contact are the newest change's value (a CRM may clear
  them);
- the owner at a moment is the CRM fold's rule (crm.py `EntityState.owner_at`): the newest owner change
  at or before it, else the first one. Every canonical deal event naming a rep is an owner change; the
  events of a CRM that attributes through entity state (`Event.entity`, HubSpot) name none and take
  the owner its owner updates give. A stay belongs to the owner at its entry, a closed deal to the owner
  at its close, an open deal to its current owner, a creation to the owner at creation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

from services.core.crm import CrmUpdate, amount_value
from services.core.events import EventType
from services.core.wire import Event

DealKey = tuple[str, str]  # tenant, deal_id
Contact = tuple[str, str]  # tenant, contact_id
# (tenant, deal_id, change_id, at, kind, value, rep_id): a `deal_changes` row.
ChangeRow = tuple[str, str, str, datetime, str, str | None, str | None]

CREATED, STAGE, WON, LOST, OWNER, CONTACT = "created", "stage", "won", "lost", "owner", "contact"
CLOSES = (WON, LOST)
_TYPE_KIND: dict[str, str | None] = {
    EventType.DEAL_CREATED.value: CREATED,
    EventType.DEAL_STAGE_CHANGED.value: STAGE,
    EventType.DEAL_UPDATED.value: None,
    EventType.DEAL_WON.value: WON,
    EventType.DEAL_LOST.value: LOST,
}
# CRM deal properties -> change kinds.
_PROPERTY_KIND = {
    "stage": STAGE,
    "amount": "amount",
    "owner": OWNER,
    "contact": CONTACT,
    "close_date": "close_date",
    "forecast_category": "forecast_category",
}
# Calls, emails and meetings: what keeps a deal's contact from looking neglected (stale deals).
ACTIVITY_TYPES: frozenset[str] = frozenset(
    t.value
    for t in (
        EventType.CALL_COMPLETED,
        EventType.EMAIL_SENT,
        EventType.MEETING_BOOKED,
        EventType.MEETING_HELD,
    )
)
_RANK = {CREATED: 0, WON: 2, LOST: 2}  # within one instant; every other kind ranks 1


# --- the change set -------------------------------------------------------------------------------


def event_changes(e: Event) -> list[ChangeRow]:
    """The change rows of one deal event (none for any other event). Ids: `e:<event_id>:<kind>`."""
    if e.deal_id is None or e.type not in _TYPE_KIND:
        return []
    kind = _TYPE_KIND[e.type]
    values: list[tuple[str, str | None]] = []
    if kind is not None:
        values.append((kind, e.stage if kind != CREATED else None))
    if e.stage is not None and kind in (CREATED, None):
        values.append((STAGE, e.stage))
    if e.entity is None and (e.rep_id is not None or e.rep_alias is not None):
        values.append((OWNER, e.rep_id if e.rep_id is not None else e.rep_alias[1] if e.rep_alias else None))
    if e.contact_id is not None:
        values.append((CONTACT, e.contact_id))
    if e.amount is not None:
        values.append(("amount", str(e.amount)))
    if e.close_date is not None:
        values.append(("close_date", e.close_date.isoformat()))
    if e.forecast_category is not None:
        values.append(("forecast_category", e.forecast_category))
    prefix = f"e:{e.event_id}:"
    return [(e.tenant, e.deal_id, prefix + k, e.occurred_at, k, v, e.rep_id) for k, v in values]


def update_change(u: CrmUpdate) -> ChangeRow | None:
    """The change row of one CRM deal update, or None. Id: `u:<update_id>`."""
    kind = _PROPERTY_KIND.get(u.property) if u.entity == "deal" else None
    if kind is None:
        return None
    rep = u.rep_id if kind == OWNER else None
    return (u.tenant, u.entity_id, f"u:{u.update_id}", u.occurred_at, kind, u.value, rep)


def scan(events: Iterable[Event]) -> tuple[list[Event], list[tuple[str, str, datetime]]]:
    """The batch's deal events, and its (tenant, contact_id, latest call/email/meeting). One pass, one
    set look-up for an event of neither kind: the batch's other events cost next to nothing here."""
    deal_events: list[Event] = []
    latest: dict[Contact, datetime] = {}
    for e in events:
        t = e.type
        if t in ACTIVITY_TYPES:
            contact = e.contact_id
            if contact is not None:
                key = (e.tenant, contact)
                at = latest.get(key)
                if at is None or e.occurred_at > at:
                    latest[key] = e.occurred_at
        elif t in _TYPE_KIND:
            deal_events.append(e)
    return deal_events, [(t, c, at) for (t, c), at in latest.items()]


def batch_changes(deal_events: Iterable[Event], updates: Iterable[CrmUpdate]) -> list[ChangeRow]:
    """The change rows of the batch's deal events and CRM updates."""
    rows = [row for e in deal_events for row in event_changes(e)]
    rows += [row for u in updates if (row := update_change(u)) is not None]
    return rows


# --- a deal's history -----------------------------------------------------------------------------


class DealChange(NamedTuple):
    """One change of a deal, as its `deal_changes` row holds it."""

    change_id: str
    at: datetime
    kind: str
    value: str | None
    rep_id: str | None

    @property
    def order(self) -> tuple[datetime, int, str]:
        return (self.at, _RANK.get(self.kind, 1), self.change_id)


# A change as `derive` walks them: (at, rank, change_id, kind, value, rep_id). Plain tuples, so a
# deal's changes sort in their order as they are (change ids are distinct within a deal), with no key
# function and no object per change: an import brings thousands of deals at once.
Ordered = tuple[datetime, int, str, str, str | None, str | None]
_AT: Final = 0
_KIND: Final = 3
_VALUE: Final = 4
_REP: Final = 5


@dataclass(slots=True)
class Stay:
    entered_at: datetime
    stage: str
    rep_id: str | None
    left_at: datetime | None = None
    next: str | None = None


@dataclass(slots=True)
class History:
    """A deal's changes walked in time order."""

    stays: list[Stay] = field(default_factory=list)
    status: str = "open"
    closed_at: datetime | None = None

    def enter(self, at: datetime, stage: str, rep_id: str | None) -> None:
        current = self.stays[-1] if self.stays else None
        if self.status == "open" and current is not None and current.left_at is None:
            if current.stage == stage:
                return  # already in it
            current.left_at, current.next = at, stage
        self.status, self.closed_at = "open", None  # a stage change after a close reopens the deal
        self.stays = [s for s in self.stays if (s.entered_at, s.stage) != (at, stage)]
        self.stays.append(Stay(at, stage, rep_id))

    def close(self, at: datetime, kind: str) -> None:
        if self.status == kind:
            return  # the same close reported again
        last = self.stays[-1] if self.stays else None
        if last is not None and (last.left_at is None or last.next in CLOSES):
            last.left_at, last.next = at, kind  # a stay completes at the close that holds
        self.status, self.closed_at = kind, at


def derive(
    tenant: str, deal_id: str, changes: Iterable[DealChange]
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The deal's `pipeline_deals` row and its `deal_stage_stays` rows (tenant first, stays in time order)."""
    ordered = [(c.at, _RANK.get(c.kind, 1), c.change_id, c.kind, c.value, c.rep_id) for c in changes]
    ordered.sort()
    return _derive(tenant, deal_id, ordered)


def _derive(
    tenant: str, deal_id: str, ordered: Sequence[Ordered]
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """`derive` of changes already in their order."""
    # The owner changes in time order (they all rank alike): crm.py's `EntityState.owner_at` over them.
    owners = [c for c in ordered if c[_KIND] == OWNER]

    def owner_at(at: datetime | None) -> str | None:
        if at is None or not owners:
            return None
        found = owners[0]
        for c in owners:
            if c[_AT] > at:
                break
            found = c
        return found[_REP]

    # The stages the deal was won or lost with: a stage change naming one closes it so (again).
    closing = {c[_VALUE]: c[_KIND] for c in ordered if c[_KIND] in CLOSES and c[_VALUE] is not None}
    history = History()
    latest: dict[str, str | None] = {}  # kind -> the value of its newest change
    created_at: datetime | None = None
    for at, _, _, kind, value, _ in ordered:
        latest[kind] = value
        if kind == CREATED:
            if created_at is None:
                created_at = at
        elif kind == STAGE:
            if value is not None:
                if value in closing:
                    history.close(at, closing[value])
                else:
                    history.enter(at, value, owner_at(at))
        elif kind in CLOSES:
            history.close(at, kind)

    current = history.stays[-1] if history.stays else None
    closed_at = history.closed_at
    owner = owner_at(closed_at) if closed_at is not None else owners[-1][_REP] if owners else None
    get = latest.get
    deal = (
        tenant, deal_id, owner, owner_at(created_at), get(CONTACT), created_at, history.status, closed_at,
        current.stage if current else None, current.entered_at if current else None,
        _amount(get("amount")), _date(get("close_date")), get("forecast_category"),
        ordered[-1][_AT] if ordered else None,
    )  # fmt: skip
    return deal, _stay_rows(tenant, deal_id, history, created_at)


def _stay_rows(
    tenant: str, deal_id: str, history: History, created_at: datetime | None
) -> list[tuple[Any, ...]]:
    rows = []
    stays = history.stays
    for i, s in enumerate(stays):
        later = list(dict.fromkeys(t.stage for t in stays[i + 1 :]))
        rows.append(
            (tenant, deal_id, s.entered_at, s.stage, s.left_at, s.next, s.rep_id, created_at, later,
             history.status == WON)
        )  # fmt: skip
    return rows


def _amount(text: str | None) -> Decimal | None:
    return None if text is None else amount_value(text)


def _date(text: str | None) -> date | None:
    """A close date as `YYYY-MM-DD` (a CRM may send a timestamp: its date part); None if it is none."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def derive_all(
    changes: Iterable[tuple[str, str, str, datetime, str, str | None, str | None]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every deal's rows from `deal_changes` rows (tenant, deal_id, change_id, at, kind, value, rep_id)."""
    by_deal: dict[DealKey, list[Ordered]] = {}
    rank = _RANK.get
    for tenant, deal_id, change_id, at, kind, value, rep_id in changes:
        key = (tenant, deal_id)
        found = by_deal.get(key)
        if found is None:
            found = by_deal[key] = []
        found.append((at, rank(kind, 1), change_id, kind, value, rep_id))
    deals, stays = [], []
    for key in sorted(by_deal):
        ordered = by_deal[key]
        ordered.sort()
        deal, rows = _derive(*key, ordered)
        deals.append(deal)
        stays.extend(rows)
    return deals, stays
