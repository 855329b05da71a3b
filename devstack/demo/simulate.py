"""The demo organisation's events, day by day. Pure and deterministic: the same organisation always
gives the same events, with the same ids, so loading the demo twice counts nothing twice.

Each event says which route it travels by (`via`): calls through Twilio (team east) or Aircall
(team west), email activity through SendGrid, deal progress through HubSpot, recorded video meetings
with their transcripts through Fathom, and what those vendors do not send (leads and deals with their
owner, channel and amount, meetings, replies, certifications, the phone calls' transcripts) as
canonical events (`devstack.demo.recordings` adds the transcripts). An event's id is the one the
vendor adapter derives from the vendor's own ids, so the event keeps its identity whichever route it
ends up taking.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from devstack.demo.model import CERTIFY_BY_DAYS, LEADS_PER_REP_DAY, MODULES, Organisation, Rep
from devstack.demo.recordings import recordings
from devstack.demo.transcripts import Segment

Via = Literal["api", "twilio", "aircall", "sendgrid", "hubspot", "fathom", "stripe"]

HUBSPOT_PORTAL = 24_681_357
HUBSPOT_DEALSTAGE_SUBSCRIPTION = 900_003
TWILIO_STATUS = {"connected": "completed", "voicemail": "completed", "no_answer": "no-answer", "busy": "busy"}
_DAY_S = 86_400
_OPTIONAL = (
    "rep_id", "contact_id", "deal_id", "channel", "direction", "outcome", "duration_s", "amount", "stage",
    "module", "score", "passed", "call_event_id", "close_date", "forecast_category", "account_id", "mrr",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class DemoEvent:
    """One event as the pipeline should see it after the vendor adapter (`canonical()`), plus the
    vendor details needed to send it in the vendor's own format."""

    event_id: str
    type: str
    occurred_at: datetime
    via: Via
    rep_id: str | None = None
    contact_id: str | None = None
    deal_id: str | None = None
    channel: str | None = None
    direction: str | None = None
    outcome: str | None = None
    duration_s: int | None = None
    amount: int | None = None
    stage: str | None = None
    module: str | None = None
    score: int | None = None
    passed: bool | None = None
    call_event_id: str | None = None
    close_date: str | None = None  # YYYY-MM-DD, deal events (devstack.demo.pipeline)
    forecast_category: str | None = None
    account_id: str | None = None  # subscription events: the billing account (devstack.demo.billing)
    mrr: int | None = None  # subscription events: the account's MRR after the event
    transcript: tuple[Segment, ...] | None = None
    ref: str | None = None  # the vendor's own id: CallSid, Aircall call id, sg_event_id, HubSpot eventId
    extra: dict[str, Any] = field(default_factory=dict)  # vendor-only details (buyer phone, message id)

    def canonical(self) -> dict[str, Any]:
        """The BuyerEvent JSON this event is, as /v1/events takes it."""
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
        }
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.transcript is not None:
            body["transcript"] = [s.wire() for s in self.transcript]
        return body


def events(org: Organisation) -> list[DemoEvent]:
    """Every event of the organisation, in generation order (not time order): the activity, then the
    transcripts of its calls and meetings."""
    activity = list(_Simulation(org).run())
    return activity + recordings(org, activity)


class _Simulation:
    def __init__(self, org: Organisation) -> None:
        self.org = org
        self.rng = random.Random(f"salesloop-demo-events:{org.seed}")
        self.seq = 0
        self.space = org.namespace

    def run(self) -> Iterator[DemoEvent]:
        org = self.org
        reps = sorted(org.reps, key=lambda r: r.rep_id)
        turn = 0
        day = org.start
        while day <= org.last_day:
            active = [r for r in reps if r.sells_from <= day]
            workday = day.weekday() < 5
            for rep in active:
                if workday:
                    yield from self._calls(rep, day)
                    yield from self._outbound_emails(rep, day)
            if active:
                for channel_index, channel in enumerate(org.channels):
                    # Leads arrive at weekends too, fewer: the weekly average is LEADS_PER_REP_DAY.
                    mean = len(active) * channel.share * LEADS_PER_REP_DAY * (1.2 if workday else 0.5)
                    for _ in range(_poisson(self.rng, mean)):
                        rep = active[turn % len(active)]
                        turn += 1
                        yield from self._lead(rep, day, channel_index)
            day += timedelta(days=1)
        for rep in reps:
            yield from self._certifications(rep)

    # --- identities -------------------------------------------------------------------------------

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _api_id(self) -> str:
        return f"demo-{self.space}-{self._next():07d}"

    def _vendor_number(self) -> int:
        return self.space * 10**9 + self._next()

    def _digest(self, kind: str) -> bytes:
        return hashlib.sha256(f"{self.space}:{kind}:{self._next()}".encode()).digest()

    # --- activity ---------------------------------------------------------------------------------

    def _at(self, day: date, start_h: float, span_h: float) -> datetime:
        offset = int(self.rng.uniform(start_h, start_h + span_h) * 3600)
        return datetime.combine(day, time(), tzinfo=UTC) + timedelta(seconds=offset)

    def _before_end(self, moment: datetime) -> bool:
        return moment < self.org.end

    def _calls(self, rep: Rep, day: date) -> Iterator[DemoEvent]:
        rng = self.rng
        for _ in range(_poisson(rng, rep.dials_per_day)):
            roll = rng.random()
            if roll < rep.connect_rate:
                outcome = "connected"
            elif roll < rep.connect_rate + 0.35:
                outcome = "voicemail"
            elif roll < rep.connect_rate + 0.38:
                outcome = "busy"
            else:
                outcome = "no_answer"
            talk = int(rng.lognormvariate(math.log(300), 0.5)) if outcome == "connected" else 0
            if outcome == "voicemail":
                talk = rng.randint(15, 45)
            ended = self._at(day, 8, 9.5)
            buyer_phone = f"+1212555{rng.randint(0, 9999):04d}"
            yield self._call(rep, outcome, ended, talk, buyer_phone)
            if outcome == "connected" and rng.random() < rep.meeting_rate:
                yield from self._meeting(rep, ended + timedelta(seconds=60))

    def _call(self, rep: Rep, outcome: str, ended: datetime, talk: int, buyer_phone: str) -> DemoEvent:
        if rep.calls_via == "twilio":
            sid = "CA" + self._digest("call").hex()[:32]
            # Twilio reports a call's whole length; only answered calls have a talk time.
            event_id = f"twilio:{sid}:{TWILIO_STATUS[outcome]}"
            return DemoEvent(
                event_id, "call.completed", ended, "twilio", rep_id=rep.rep_id,
                direction="outbound", outcome=outcome, duration_s=talk, ref=sid,
                extra={"buyer_phone": buyer_phone, "rep_phone": rep.phone},
            )  # fmt: skip
        call_id = self._vendor_number()
        # Aircall tells answered, voicemail or missed apart, nothing finer; only an answered call
        # has a conversation.
        outcome = "no_answer" if outcome == "busy" else outcome
        return DemoEvent(
            f"aircall:{call_id}:call.ended", "call.completed", ended, "aircall", rep_id=rep.rep_id,
            direction="outbound", outcome=outcome, duration_s=talk if outcome == "connected" else None,
            ref=str(call_id),
            extra={"buyer_phone": buyer_phone, "aircall_user_id": rep.aircall_user_id, "ring_s": 12},
        )  # fmt: skip

    def _meeting(self, rep: Rep, booked_at: datetime) -> Iterator[DemoEvent]:
        rng = self.rng
        prospect = f"p{self.space}-{self._next()}"
        if not self._before_end(booked_at):
            return
        yield DemoEvent(
            self._api_id(), "meeting.booked", booked_at, "api", rep_id=rep.rep_id, contact_id=prospect
        )
        held_day = booked_at.date() + timedelta(days=rng.randint(2, 6))
        when = self._at(held_day, 9, 7)
        if self._before_end(when):
            if rng.random() < rep.show_rate:
                yield DemoEvent(
                    self._api_id(), "meeting.held", when, "api", rep_id=rep.rep_id, contact_id=prospect,
                    duration_s=rng.choice((1800, 2700, 3600)),
                )  # fmt: skip
            else:
                yield DemoEvent(
                    self._api_id(), "meeting.no_show", when, "api", rep_id=rep.rep_id, contact_id=prospect
                )

    def _outbound_emails(self, rep: Rep, day: date) -> Iterator[DemoEvent]:
        for _ in range(_poisson(self.rng, 2.5)):
            prospect = f"p{self.space}-{self._next()}"
            yield from self._email(rep, prospect, self._at(day, 8, 9), replies=True)

    def _email(self, rep: Rep, contact: str, sent: datetime, *, replies: bool) -> Iterator[DemoEvent]:
        rng = self.rng
        if not self._before_end(sent):
            return
        message = base64.b32encode(self._digest("message")[:15]).decode().lower()
        extra = {"sg_message_id": message, "buyer_email": f"{contact}@buyer.example"}
        email = DemoEvent(
            "", "email.sent", sent, "sendgrid", rep_id=rep.rep_id, contact_id=contact, direction="outbound",
            extra=extra,
        )  # fmt: skip
        yield self._sendgrid(email, "email.sent", sent)
        opened = sent + timedelta(seconds=int(rng.lognormvariate(math.log(5400), 1.0)))
        if rng.random() < 0.45 and self._before_end(opened):
            yield self._sendgrid(email, "email.opened", opened)
            clicked = opened + timedelta(seconds=rng.randint(5, 600))
            if rng.random() < 0.2 and self._before_end(clicked):
                yield self._sendgrid(email, "email.clicked", clicked)
        replied = sent + timedelta(seconds=int(rng.lognormvariate(math.log(4 * 3600), 1.0)))
        if replies and rng.random() < rep.reply_rate and self._before_end(replied):
            yield self._api(email, "email.replied", replied, direction="inbound", extra={})

    def _sendgrid(self, email: DemoEvent, type_: str, at: datetime) -> DemoEvent:
        sg_event_id = base64.urlsafe_b64encode(self._digest("sendgrid")[:16]).decode().rstrip("=")
        return replace(email, event_id=f"sendgrid:{sg_event_id}", type=type_, occurred_at=at, ref=sg_event_id)

    def _api(self, like: DemoEvent, type_: str, at: datetime, **changes: Any) -> DemoEvent:
        """A canonical event with the identities of `like` (the lead, the deal)."""
        return replace(like, event_id=self._api_id(), type=type_, occurred_at=at, via="api", **changes)

    # --- inbound leads and their deals --------------------------------------------------------------

    def _lead(self, rep: Rep, day: date, channel_index: int) -> Iterator[DemoEvent]:
        rng, org = self.rng, self.org
        channel = org.channels[channel_index]
        contact = f"c{self.space}-{self._next()}"
        created = self._at(day, 0, 24)
        if not self._before_end(created):
            return
        lead = DemoEvent(
            self._api_id(), "lead.created", created, "api", rep_id=rep.rep_id, contact_id=contact,
            channel=channel.name,
        )  # fmt: skip
        yield lead
        touch = created + timedelta(seconds=int(rng.lognormvariate(math.log(channel.speed_median_s), 0.6)))
        yield from self._email(rep, contact, touch, replies=False)
        if rng.random() >= channel.p_mql:
            return
        mql = created + timedelta(seconds=int(rng.lognormvariate(math.log(4 * 3600), 0.5)))
        if not self._before_end(mql):
            return
        yield self._api(lead, "lead.qualified", mql, stage="mql")
        if rng.random() >= channel.p_sql:
            return
        sql = mql + timedelta(seconds=rng.randint(1 * _DAY_S, 6 * _DAY_S))
        if not self._before_end(sql):
            return
        yield self._api(lead, "lead.qualified", sql, stage="sql")
        if rng.random() >= channel.p_deal:
            return
        yield from self._deal(rep, lead, sql + timedelta(seconds=rng.randint(1 * _DAY_S, 4 * _DAY_S)), day)

    def _deal(self, rep: Rep, lead: DemoEvent, created: datetime, lead_day: date) -> Iterator[DemoEvent]:
        rng = self.rng
        channel = next(c for c in self.org.channels if c.name == lead.channel)
        deal_id = str(self._vendor_number())
        amount = int(round(rng.lognormvariate(math.log(channel.amount_median), 0.25), -2))
        closes = created + timedelta(seconds=int(rng.lognormvariate(math.log(20 * _DAY_S), 0.3)))
        # Skill and ramp scale the odds of winning, which keeps the probability below 1.
        odds = channel.p_win / (1 - channel.p_win) * rep.skill * rep.ramp(lead_day)
        won = rng.random() < odds / (1 + odds)
        if not self._before_end(created):
            return
        deal = self._api(lead, "deal.created", created, deal_id=deal_id, amount=amount)
        yield deal
        for stage, low, high in (("qualifiedtobuy", 2, 5), ("presentationscheduled", 7, 12)):
            moved = created + timedelta(seconds=rng.randint(low * _DAY_S, high * _DAY_S))
            if moved < closes and self._before_end(moved):
                yield self._hubspot_stage(deal_id, stage, moved)
        if self._before_end(closes):
            if won:
                yield self._api(deal, "deal.won", closes, stage="closedwon")
            else:
                yield self._api(deal, "deal.lost", closes, stage="closedlost", amount=None)

    def _hubspot_stage(self, deal_id: str, stage: str, at: datetime) -> DemoEvent:
        number = self._vendor_number()
        event_id = f"hubspot:{HUBSPOT_PORTAL}:{number}:{HUBSPOT_DEALSTAGE_SUBSCRIPTION}:{deal_id}"
        return DemoEvent(
            event_id, "deal.stage_changed", at, "hubspot", deal_id=deal_id, stage=stage, ref=str(number)
        )

    # --- training ---------------------------------------------------------------------------------

    def _certifications(self, rep: Rep) -> Iterator[DemoEvent]:
        """New hires take every module. Certified reps pass them all within CERTIFY_BY_DAYS (and
        before the data ends, so the data shows it); the others pass all but one in time and that
        one only after month 3, if at all before the data ends."""
        if rep.certified is None:
            return
        rng = self.rng
        late = None if rep.certified else rng.choice(MODULES)
        in_time = min(CERTIFY_BY_DAYS, (self.org.last_day - rep.hired_at).days)
        for module in MODULES:
            if module == late:
                first: int | None = rng.randint(20, 60)
                passed_on = rng.randint(100, 140)
            else:
                passed_on = rng.randint(min(7, in_time), in_time)
                first = passed_on - rng.randint(3, 6) if rng.random() < 0.3 and passed_on > 7 else None
            if first is not None:
                yield from self._attempt(rep, module, first, passed=False)
            yield from self._attempt(rep, module, passed_on, passed=True)

    def _attempt(self, rep: Rep, module: str, day_offset: int, *, passed: bool) -> Iterator[DemoEvent]:
        day = rep.hired_at + timedelta(days=day_offset)
        at = self._at(day, 9, 8)
        score = self.rng.randint(72, 98) if passed else self.rng.randint(45, 69)
        if day <= self.org.last_day:
            yield DemoEvent(
                self._api_id(), "training.certification", at, "api", rep_id=rep.rep_id, module=module,
                score=score, passed=passed,
            )  # fmt: skip


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: exact, and fast for the small means used here."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
