"""The rollup fold: decoded events -> additive rollup deltas (SPEC 5.1, 5.5). Pure: no I/O, no clock.

This is the hot path. Events are plain slotted objects (services/core/wire.py builds them without
pydantic), deltas are combined per key in memory so a batch of thousands of events becomes a few rows,
seconds are kept as integer milliseconds and money as `Decimal`, so sums are exact and independent of
how the stream was cut into batches. Its rows are written by folds/rollups_sql.py.

`Deltas`, `ZoneOf` and `FoldInput` are what every fold of the registry (folds/__init__.py) takes and
gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from services.core.crm import CrmUpdate
from services.core.events import EventType
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS
from services.core.wire import Event

# (tenant, rep_id) -> the rep's timezone; rep_id None asks for the tenant's timezone.
ZoneOf = Callable[[str, str | None], ZoneInfo]
RepKey = tuple[str, str, date]
ChannelKey = tuple[str, str, date]

MILLI = 3  # seconds columns are stored to the millisecond (Numeric(20, 3))


@dataclass(frozen=True, slots=True)
class FoldInput:
    """What a fold gets: the batch's new events and CRM updates (archived by this transaction, so
    distinct and never folded before) and the timezone lookup for the events' reps and tenants."""

    events: Sequence[Event]
    updates: Sequence[CrmUpdate]
    zone_of: ZoneOf


@dataclass(slots=True)
class Watermark:
    as_of: datetime
    events: int


@dataclass
class Deltas:
    """Rollup increments keyed like the tables' primary keys. Adding two Deltas is adding the streams."""

    rep: dict[RepKey, list[Any]] = field(default_factory=dict)
    channel: dict[ChannelKey, list[Any]] = field(default_factory=dict)
    watermarks: dict[str, Watermark] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(w.events for w in self.watermarks.values())

    def merge(self, other: Deltas) -> None:
        for mine, theirs in ((self.rep, other.rep), (self.channel, other.channel)):
            for key, values in theirs.items():
                row = mine.get(key)
                if row is None:
                    mine[key] = list(values)
                else:
                    for i, v in enumerate(values):
                        row[i] += v
        for tenant, mark in other.watermarks.items():
            own = self.watermarks.get(tenant)
            if own is None:
                self.watermarks[tenant] = Watermark(mark.as_of, mark.events)
            else:
                own.as_of = max(own.as_of, mark.as_of)
                own.events += mark.events

    def rep_rows(self) -> list[tuple[Any, ...]]:
        """(tenant, rep_id, day, *REP_COUNTERS) in key order: concurrent writers lock rows alike."""
        return [(*key, *_rep_columns(row)) for key, row in sorted(self.rep.items())]

    def channel_rows(self) -> list[tuple[Any, ...]]:
        """(tenant, channel, day, *CHANNEL_COUNTERS) in key order."""
        return [(*key, *_channel_columns(row)) for key, row in sorted(self.channel.items())]

    def watermark_rows(self) -> list[tuple[str, datetime, int]]:
        return [(t, w.as_of, w.events) for t, w in sorted(self.watermarks.items())]


def _rep_columns(row: list[Any]) -> list[Any]:
    out = list(row)
    for i in _REP_MS:
        out[i] = Decimal(row[i]).scaleb(-MILLI)
    out[R_REVENUE] = Decimal(row[R_REVENUE])
    return out


def _channel_columns(row: list[Any]) -> list[Any]:
    out = list(row)
    out[C_REVENUE] = Decimal(row[C_REVENUE])
    return out


def _rep(name: str) -> int:
    return REP_COUNTERS.index(name)


def _ch(name: str) -> int:
    return CHANNEL_COUNTERS.index(name)


R_EVENTS, R_CALLS, R_DIALS, R_CONNECTS = _rep("events"), _rep("calls"), _rep("dials"), _rep("connects")
R_TALK_TIME, R_TALK_CALLS = _rep("talk_time_s"), _rep("talk_calls")
R_REP_TALK, R_BUYER_TALK = _rep("rep_talk_s"), _rep("buyer_talk_s")
R_MQL, R_SQL = _rep("leads_mql"), _rep("leads_sql")
R_WON, R_REVENUE = _rep("deals_won"), _rep("revenue_won")
R_CERTS, R_CERTS_PASSED = _rep("certifications"), _rep("certifications_passed")
_REP_MS = (R_TALK_TIME, R_REP_TALK, R_BUYER_TALK)

C_EVENTS, C_LEADS, C_MQLS, C_SQLS = _ch("events"), _ch("leads"), _ch("mqls"), _ch("sqls")
C_DEALS_CREATED, C_WON, C_REVENUE = _ch("deals_created"), _ch("deals_won"), _ch("revenue_won")

# Event types as plain strings: the hot loop compares them with `Event.type` (a str) per event.
CALL_COMPLETED: str = EventType.CALL_COMPLETED.value
LEAD_QUALIFIED: str = EventType.LEAD_QUALIFIED.value
DEAL_WON: str = EventType.DEAL_WON.value
TRAINING_CERTIFICATION: str = EventType.TRAINING_CERTIFICATION.value

# Types whose only rep effect is one counter.
_REP_ONE: dict[str, int] = {
    EventType.EMAIL_SENT.value: _rep("emails_sent"),
    EventType.EMAIL_OPENED.value: _rep("emails_opened"),
    EventType.EMAIL_CLICKED.value: _rep("emails_clicked"),
    EventType.EMAIL_REPLIED.value: _rep("email_replies"),
    EventType.EMAIL_BOUNCED.value: _rep("emails_bounced"),
    EventType.MEETING_BOOKED.value: _rep("meetings_booked"),
    EventType.MEETING_HELD.value: _rep("meetings_held"),
    EventType.MEETING_NO_SHOW.value: _rep("meetings_no_show"),
    EventType.LEAD_CREATED.value: _rep("leads_created"),
    EventType.DEAL_CREATED.value: _rep("deals_created"),
    EventType.DEAL_STAGE_CHANGED.value: _rep("deal_stage_changes"),
    EventType.DEAL_LOST.value: _rep("deals_lost"),
}
_CHANNEL_ONE: dict[str, int] = {
    EventType.LEAD_CREATED.value: C_LEADS,
    EventType.DEAL_CREATED.value: C_DEALS_CREATED,
}

_N_REP = len(REP_COUNTERS)
_N_CHANNEL = len(CHANNEL_COUNTERS)


def distinct(events: Iterable[Event]) -> list[Event]:
    """The first delivery of each (tenant, event_id), in stream order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for e in events:
        key = (e.tenant, e.event_id)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def fold(events: Iterable[Event], zone_of: ZoneOf, into: Deltas | None = None) -> Deltas:
    """Add the events' contributions to `into` (a new Deltas by default). Events must be distinct.

    Longer than a function should be, on purpose: this is the hot loop, run once per event, and each
    helper call or attribute lookup it saves is measurable in events/s (bench/README.md).
    """
    deltas = into if into is not None else Deltas()
    reps, channels, marks = deltas.rep, deltas.channel, deltas.watermarks
    zones: dict[tuple[str, str | None], ZoneInfo] = {}

    for e in events:
        tenant = e.tenant
        at = e.occurred_at
        mark = marks.get(tenant)
        if mark is None:
            marks[tenant] = Watermark(at, 1)
        else:
            mark.events += 1
            if at > mark.as_of:
                mark.as_of = at

        if e.entity is not None:
            continue  # its rep, amount and channel come from entity state: the CRM fold counts it
        t = e.type
        rep_day: date | None = None
        rep_zone: ZoneInfo | None = None
        rep_id = e.rep_id
        if rep_id is not None:
            zkey = (tenant, rep_id)
            rep_zone = zones.get(zkey)
            if rep_zone is None:
                rep_zone = zones[zkey] = zone_of(tenant, rep_id)
            rep_day = at.astimezone(rep_zone).date()
            key = (tenant, rep_id, rep_day)
            row = reps.get(key)
            if row is None:
                row = reps[key] = [0] * _N_REP
            row[R_EVENTS] += 1
            slot = _REP_ONE.get(t)
            if slot is not None:
                row[slot] += 1
            elif t == CALL_COMPLETED:
                _fold_call(row, e)
            elif t == LEAD_QUALIFIED:
                if e.stage == "mql":
                    row[R_MQL] += 1
                elif e.stage == "sql":
                    row[R_SQL] += 1
            elif t == DEAL_WON:
                row[R_WON] += 1
                if e.amount is not None:
                    row[R_REVENUE] += e.amount
            elif t == TRAINING_CERTIFICATION:
                row[R_CERTS] += 1
                if e.passed:
                    row[R_CERTS_PASSED] += 1

        channel = e.channel
        if channel is not None:
            tkey = (tenant, None)
            zone = zones.get(tkey)
            if zone is None:
                zone = zones[tkey] = zone_of(tenant, None)
            day = rep_day if zone is rep_zone and rep_day is not None else at.astimezone(zone).date()
            ckey = (tenant, channel, day)
            crow = channels.get(ckey)
            if crow is None:
                crow = channels[ckey] = [0] * _N_CHANNEL
            crow[C_EVENTS] += 1
            cslot = _CHANNEL_ONE.get(t)
            if cslot is not None:
                crow[cslot] += 1
            elif t == LEAD_QUALIFIED:
                if e.stage == "mql":
                    crow[C_MQLS] += 1
                elif e.stage == "sql":
                    crow[C_SQLS] += 1
            elif t == DEAL_WON:
                crow[C_WON] += 1
                if e.amount is not None:
                    crow[C_REVENUE] += e.amount
    return deltas


def _fold_call(row: list[Any], e: Event) -> None:
    row[R_CALLS] += 1
    connected = e.outcome == "connected"
    if e.direction == "outbound":
        row[R_DIALS] += 1
        if connected:
            row[R_CONNECTS] += 1
    if connected and e.duration_ms is not None:
        row[R_TALK_TIME] += e.duration_ms
    if e.rep_talk_ms is not None and e.buyer_talk_ms is not None:
        row[R_TALK_CALLS] += 1
        row[R_REP_TALK] += e.rep_talk_ms
        row[R_BUYER_TALK] += e.buyer_talk_ms
