"""The conversation fold, pure part (SPEC 5.7): which events bring a call or a transcript, which
transcript of a call wins, and what an analysed call adds to `conversation_rollups` and to the 5.1
talk sums. No I/O, no clock (its SQL: conversations_sql.py).

A call's `call_analyses` row is a function of what has been folded of it, in any order:

- the call's facts (rep, contact, time, duration, rep-local day), once its `call.completed` is folded;
  until then the row waits without them and adds nothing to the rollups;
- the analysis of its winning transcript: of the call's own and every `call.transcribed` naming it,
  the one delivered last, the largest (received_at, event_id). `received_at` is set by ingest and
  archived with the event, so a rebuild picks the same winner.

Its contribution to the rollups is a function of the row alone, so the fold adds `after - before` for
each row a batch changes: a replaced analysis moves its old contribution out and the new one in, and
a redelivered call or transcript (never new to the fold: the archive recognised it) changes nothing.
Only the winning transcript of a batch is analysed, and only when it beats the stored one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from services.aggregator.conversation import CallAnalysis
from services.aggregator.erasure import analysis_of
from services.aggregator.fold import R_BUYER_TALK, R_REP_TALK, R_TALK_CALLS, Deltas, RepKey, ZoneOf
from services.core.events import EventType
from services.core.models import CONVERSATION_COUNTERS, REP_COUNTERS
from services.core.models.conversations import CALL_METRICS, COUNT_METRICS, TACTICS
from services.core.wire import Event

Key = tuple[str, str]  # tenant, the call's event id
# (tenant, contact_id) -> whether the contact was erased (services/aggregator/erasure.py)
Erased = Callable[[str, str | None], bool]

CALL_COMPLETED: str = EventType.CALL_COMPLETED.value
CALL_TRANSCRIBED: str = EventType.CALL_TRANSCRIBED.value
_SIXTH = Decimal("0.000001")
_N_CONVERSATION = len(CONVERSATION_COUNTERS)
_N_REP = len(REP_COUNTERS)
_TACTIC_SLOT = {t: 1 + 2 * len(CALL_METRICS) + i for i, t in enumerate(TACTICS)}


@dataclass(frozen=True, slots=True)
class Facts:
    """What the call itself says; `talk_reported`: it carried rep_talk_s and buyer_talk_s."""

    rep_id: str | None
    contact_id: str | None
    occurred_at: datetime
    duration_ms: int | None
    talk_reported: bool

    @classmethod
    def of(cls, e: Event) -> Facts:
        reported = e.rep_talk_ms is not None and e.buyer_talk_ms is not None
        return cls(e.rep_id, e.contact_id, e.occurred_at, e.duration_ms, reported)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A transcript as delivered: the event that carried it. Its JSON is parsed only if it wins."""

    event_id: str
    received_at: datetime
    contact_id: str | None
    payload: str

    @property
    def rank(self) -> tuple[datetime, str]:
        return (self.received_at, self.event_id)


@dataclass(frozen=True, slots=True)
class Analysed:
    """A transcript's analysis as `call_analyses` keeps it. `metrics` in CALL_METRICS order; `moments`
    as stored: [{tactic, speaker, start_s, text}], text None once erased."""

    event_id: str
    received_at: datetime
    words: int
    metrics: tuple[float | int | None, ...]
    rep_speech_s: float
    buyer_speech_s: float
    moments: tuple[dict[str, Any], ...]

    @property
    def rank(self) -> tuple[datetime, str]:
        return (self.received_at, self.event_id)

    @classmethod
    def of(cls, delivery: Delivery, analysis: CallAnalysis) -> Analysed:
        metrics = tuple(_metric(m, analysis.metrics.get(m)) for m in CALL_METRICS)
        moments = tuple(
            {"tactic": m.tactic, "speaker": m.speaker, "start_s": m.start_s, "text": m.text}
            for m in analysis.moments
        )
        return cls(
            delivery.event_id, delivery.received_at, analysis.words, metrics,
            _finite(analysis.rep_speech_s), _finite(analysis.buyer_speech_s), moments,
        )  # fmt: skip

    def without_text(self) -> Analysed:
        moments = tuple({**m, "text": None} for m in self.moments)
        return Analysed(
            self.event_id, self.received_at, self.words, self.metrics, self.rep_speech_s,
            self.buyer_speech_s, moments,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Call:
    """One `call_analyses` row: the call's facts and day (None while the call is not folded), the
    winning analysis, the contact (None once erased), and whether personal text was erased (the
    contact's erasure, or the transcript's retention ran out): then the moments keep no text."""

    tenant: str
    call_event_id: str
    facts: Facts | None
    day: date | None
    analysed: Analysed
    contact_id: str | None = None
    erased: bool = False


@dataclass(slots=True)
class Batch:
    """What a batch brings: its calls, and per call its latest transcript delivery."""

    calls: dict[Key, Event] = field(default_factory=dict)
    transcripts: dict[Key, Delivery] = field(default_factory=dict)

    def keys(self) -> list[Key]:
        return sorted(self.calls.keys() | self.transcripts.keys())

    def tenants(self) -> list[str]:
        return sorted({t for t, _ in self.calls} | {t for t, _ in self.transcripts})

    def offer(self, key: Key, delivery: Delivery) -> None:
        held = self.transcripts.get(key)
        if held is None or delivery.rank > held.rank:
            self.transcripts[key] = delivery


def select(events: Iterable[Event]) -> Batch | None:
    """The batch's calls and transcripts, in one pass over its events; None when it has neither.

    Anything but a call costs one string comparison, a call a dictionary entry and a look for
    "transcript" in its JSON text: most calls come without one, and their JSON is not parsed.
    """
    batch: Batch | None = None
    for e in events:
        t = e.type
        if t == CALL_COMPLETED:
            if batch is None:
                batch = Batch()
            key = (e.tenant, e.event_id)
            batch.calls[key] = e
            if '"transcript"' in e.payload and _transcript(e.payload) is not None:
                batch.offer(key, Delivery(e.event_id, e.received_at, e.contact_id, e.payload))
        elif t == CALL_TRANSCRIBED and e.call_event_id is not None:
            if batch is None:
                batch = Batch()
            delivery = Delivery(e.event_id, e.received_at, e.contact_id, e.payload)
            batch.offer((e.tenant, e.call_event_id), delivery)
    return batch


def analysed(delivery: Delivery) -> tuple[Analysed, bool]:
    """The delivered transcript's analysis, and whether its text was erased: an erased transcript
    counts by the analysis it kept (services/aggregator/erasure.py), its moments without text."""
    analysis, erased = analysis_of(delivery.payload)
    found = Analysed.of(delivery, analysis)
    return (found.without_text(), True) if erased else (found, False)


@dataclass(slots=True)
class Settled:
    """What a batch changes: the rows to write, and what they add to the two rollups."""

    rows: list[Call] = field(default_factory=list)
    conversation: dict[RepKey, list[Any]] = field(default_factory=dict)
    talk: Deltas = field(default_factory=Deltas)


def settle(
    batch: Batch,
    stored: dict[Key, Call],
    archived: dict[Key, Facts],
    zone_of: ZoneOf,
    erased: Erased,
) -> Settled:
    """Fold the batch into the stored rows: `archived` has the facts of calls folded in earlier
    batches that the rows do not have yet; `zone_of` knows the zones of every rep in the batch's and
    the archived calls."""
    out = Settled()
    for key in batch.keys():
        old = stored.get(key)
        delivery = batch.transcripts.get(key)
        if delivery is not None and (old is None or delivery.rank > old.analysed.rank):
            analysis, text_erased = analysed(delivery)
        elif old is not None:
            analysis, text_erased = old.analysed, old.erased
        else:
            continue  # a call without a transcript, so far: nothing to keep
        facts, day = (old.facts, old.day) if old is not None else (None, None)
        if facts is None:
            e = batch.calls.get(key)
            facts = Facts.of(e) if e is not None else archived.get(key)
            if facts is not None:
                day = facts.occurred_at.astimezone(zone_of(key[0], facts.rep_id)).date()
        contact = facts.contact_id if facts is not None else delivery.contact_id if delivery else None
        if erased(key[0], contact):
            contact, text_erased = None, True
        if text_erased:
            analysis = analysis.without_text()
        new = Call(*key, facts, day, analysis, contact, text_erased)
        if new == old:
            continue
        out.rows.append(new)
        if old is not None:
            _contribute(out, old, -1)
        _contribute(out, new, 1)
    out.conversation = {k: v for k, v in out.conversation.items() if any(v)}
    out.talk.rep = {k: v for k, v in out.talk.rep.items() if any(v)}
    return out


def _contribute(out: Settled, call: Call, sign: int) -> None:
    """Add (sign 1) or take out (-1) what `call` adds to the rollups: nothing before its call is
    folded, nor for a call without a rep."""
    facts, a = call.facts, call.analysed
    if facts is None or facts.rep_id is None or call.day is None or a.words == 0:
        return
    key = (call.tenant, facts.rep_id, call.day)
    row = out.conversation.get(key)
    if row is None:
        row = out.conversation[key] = [0] * _N_CONVERSATION
    row[0] += sign
    for i, v in enumerate(a.metrics):
        if v is not None:
            row[1 + 2 * i] += sign * _sum_value(v)
            row[2 + 2 * i] += sign
    for m in a.moments:
        slot = _TACTIC_SLOT.get(m["tactic"])
        if slot is not None:
            row[slot] += sign
    share = a.metrics[0]  # rep_talk_share: None when nobody speaks
    if not facts.talk_reported and share is not None:
        talk = out.talk.rep.get(key)
        if talk is None:
            talk = out.talk.rep[key] = [0] * _N_REP
        talk[R_TALK_CALLS] += sign
        talk[R_REP_TALK] += sign * round(a.rep_speech_s * 1000)
        talk[R_BUYER_TALK] += sign * round(a.buyer_speech_s * 1000)


def _transcript(payload: str) -> list[Any] | None:
    value = orjson.loads(payload).get("transcript")
    return value if isinstance(value, list) else None


def _metric(name: str, v: float | int | None) -> float | int | None:
    if v is None:
        return None
    if name in COUNT_METRICS:
        return int(v)
    return float(v) if math.isfinite(v) else None


def _finite(v: float) -> float:
    return float(v) if math.isfinite(v) else 0.0


def _sum_value(v: float | int) -> Decimal:
    """A metric as its sum column adds it: rounded per call, so sums do not depend on batching."""
    if isinstance(v, int):
        return Decimal(v)
    return Decimal(repr(v)).quantize(_SIXTH)
