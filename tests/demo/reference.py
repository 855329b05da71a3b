"""What the feedback API should say about a demo organisation, computed straight from its events.

The counting here is deliberately naive and shares no code with the aggregator; the statistics
(peer gaps, correlations, ramps) reuse the API's pure service functions, whose own tests pin them.
A call's transcript is read with the analysis the aggregator runs (SPEC 5.7's rules, pinned by their
own tests; tests/demo/test_transcripts.py checks it finds exactly the tactics each line was written
as); which transcript counts for which rep, day and window, and the means over calls, are counted
here.
"""

from __future__ import annotations

import functools
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from devstack.demo.model import DAYS_PER_MONTH, Organisation
from devstack.demo.simulate import DemoEvent
from devstack.demo.transcripts import Segment
from services.aggregator.conversation import TACTICS, CallAnalysis, analyse
from services.api.coaching.service import CoachingRep, RepCoaching, coach_scope, observations
from services.api.hiring.service import TraitCorrelation, trait_correlations
from services.api.kit.tenure import month_index
from services.api.training.service import RampCohort, RampRep, ramp


@dataclass(frozen=True)
class Window:
    start: date
    end: date  # inclusive

    @property
    def months(self) -> float:
        return ((self.end - self.start).days + 1) / DAYS_PER_MONTH

    def holds(self, e: DemoEvent) -> bool:
        return self.start <= e.occurred_at.date() <= self.end


def rep_counts(events: Iterable[DemoEvent], window: Window) -> dict[str, dict[str, float]]:
    """SPEC 5.1 counts per rep over the window (every demo rep keeps UTC days)."""
    counts: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    names = {
        "email.sent": "emails_sent",
        "email.replied": "email_replies",
        "meeting.booked": "meetings_booked",
        "meeting.held": "meetings_held",
        "deal.created": "deals_created",
        "deal.lost": "deals_lost",
    }
    for e in events:
        if e.rep_id is None or not window.holds(e):
            continue
        c = counts[e.rep_id]
        if e.type == "call.completed" and e.direction == "outbound":
            c["dials"] += 1
            c["connects"] += e.outcome == "connected"
        elif e.type == "deal.won":
            c["deals_won"] += 1
            c["revenue_won"] += e.amount or 0
        elif e.type in names:
            c[names[e.type]] += 1
    return {rep: dict(c) for rep, c in counts.items()}


@functools.cache
def analysis(transcript: tuple[Segment, ...]) -> CallAnalysis:
    """The analysis of a demo transcript (SPEC 5.7's rules, which their own tests pin), kept: the
    tests ask for the same transcripts' analyses many times."""
    return analyse([s.wire() for s in transcript])


def analysed_calls(events: Iterable[DemoEvent]) -> dict[str, tuple[DemoEvent, CallAnalysis]]:
    """Each call with a transcript (its own, or a call.transcribed naming it), by call event id, with
    the analysis of its transcript. A demo call has at most one transcript."""
    calls = {e.event_id: e for e in events if e.type == "call.completed"}
    out = {}
    for e in events:
        if e.transcript is None:
            continue
        call = calls[e.call_event_id] if e.type == "call.transcribed" and e.call_event_id else e
        assert call.event_id not in out, call.event_id
        out[call.event_id] = (call, analysis(e.transcript))
    return out


def conversations(events: Iterable[DemoEvent], window: Window) -> dict[str, dict[str, float | None]]:
    """SPEC 5.7 per rep over the window, and the talk times the transcripts feed into talk_ratio: the
    means of each rep's analysed calls, each per-call value rounded as the rollups store it."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for call, a in analysed_calls(events).values():
        if call.rep_id is None or not window.holds(call) or a.words == 0:
            continue
        c = sums[call.rep_id]
        c["calls_analysed"] += 1
        for name, value in a.metrics.items():
            if value is not None:
                c[f"{name}_sum"] += round(value, 6)
                c[f"{name}_n"] += 1
        for m in a.moments:
            c[f"{m.tactic}_moments"] += 1
        if a.metrics["rep_talk_share"] is not None:
            c["talk_calls"] += 1
            c["rep_talk_ms"] += round(a.rep_speech_s * 1000)
            c["buyer_talk_ms"] += round(a.buyer_speech_s * 1000)
    out = {}
    for rep_id, c in sums.items():
        calls = c["calls_analysed"]
        out[rep_id] = {
            "calls_analysed": calls,
            "talk_calls": c["talk_calls"],
            "talk_ratio": _ratio(c["rep_talk_ms"], c["rep_talk_ms"] + c["buyer_talk_ms"]),
            "rep_talk_share": _ratio(c["rep_talk_share_sum"], c["rep_talk_share_n"]),
            "longest_monologue_s": _ratio(c["longest_monologue_s_sum"], c["longest_monologue_s_n"]),
            "questions_per_call": _ratio(c["rep_questions_sum"], calls),
            **{f"{t}_per_call": _ratio(c[f"{t}_moments"], calls) for t in TACTICS},
        }
    return out


def rep_metrics(org: Organisation, events: list[DemoEvent], window: Window) -> dict[str, dict[str, Any]]:
    out = {}
    counts = rep_counts(events, window)
    talk = conversations(events, window)
    for rep in org.reps:
        c = counts.get(rep.rep_id, {})
        get = c.get
        out[rep.rep_id] = {
            **c,
            **talk.get(rep.rep_id, {}),
            "connect_rate": _ratio(get("connects", 0), get("dials", 0)),
            "meeting_rate": _ratio(get("meetings_booked", 0), get("connects", 0)),
            "show_rate": _ratio(get("meetings_held", 0), get("meetings_booked", 0)),
            "reply_rate": _ratio(get("email_replies", 0), get("emails_sent", 0)),
            "win_rate": _ratio(get("deals_won", 0), get("deals_won", 0) + get("deals_lost", 0)),
            "avg_deal_size": _ratio(get("revenue_won", 0), get("deals_won", 0)),
            "quota_attainment": get("revenue_won", 0) / (rep.quota_monthly * window.months),
        }
    return out


def coaching(org: Organisation, events: list[DemoEvent], window: Window) -> dict[str, RepCoaching]:
    metrics = rep_metrics(org, events, window)
    reps = [CoachingRep(r.rep_id, r.team, observations(metrics[r.rep_id])) for r in org.reps]
    return {c.rep_id: c for c in coach_scope(reps)}


def correlations(org: Organisation, events: list[DemoEvent], window: Window) -> dict[str, TraitCorrelation]:
    metrics = rep_metrics(org, events, window)
    # The demo sends the scorecards of the reps who have sold: not the hiring wave's (send.register).
    cards = {r.rep_id: {k: float(v) for k, v in r.traits.items()} for r in org.reps if r.cohort != "wave"}
    return trait_correlations(cards, {rep: m["quota_attainment"] for rep, m in metrics.items()})


def cohort_ramp(org: Organisation, events: list[DemoEvent]) -> dict[str, RampCohort]:
    """The API's ramp (cohort=month, metric=revenue_won) of the hire cohorts inside the period."""
    monthly: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    first_win: dict[str, date] = {}
    hired = {r.rep_id: r.hired_at for r in org.reps}
    for e in events:
        if e.type == "deal.won" and e.rep_id is not None:
            k = month_index(hired[e.rep_id], e.occurred_at.date())
            if k is not None:
                monthly[e.rep_id][k] += e.amount or 0
                day = e.occurred_at.date()
                first_win[e.rep_id] = min(first_win.get(e.rep_id, day), day)
    reps = [
        RampRep(r.rep_id, r.hired_at, dict(monthly[r.rep_id]), first_win.get(r.rep_id))
        for r in org.reps
        if r.cohort != "veteran"
    ]
    return {c.cohort: c for c in ramp(reps, cohort="month", today=org.end.date(), missing=0.0)}


def channel_quality(events: Iterable[DemoEvent]) -> dict[str, dict[str, float]]:
    """Leads, deals won, lead -> won and median speed to lead (first email after creation) per channel."""
    leads: dict[str, int] = defaultdict(int)
    won: dict[str, int] = defaultdict(int)
    created: dict[str, tuple[str, Any]] = {}
    first_touch: dict[str, Any] = {}
    for e in events:
        if e.type == "lead.created" and e.channel and e.contact_id:
            leads[e.channel] += 1
            created[e.contact_id] = (e.channel, e.occurred_at)
        elif e.type == "deal.won" and e.channel:
            won[e.channel] += 1
    for e in events:
        if e.type == "email.sent" and e.contact_id in created:
            at = created[e.contact_id][1]
            if e.occurred_at >= at and (
                e.contact_id not in first_touch or e.occurred_at < first_touch[e.contact_id]
            ):
                first_touch[e.contact_id] = e.occurred_at
    speeds: dict[str, list[float]] = defaultdict(list)
    for contact, touched in first_touch.items():
        channel, at = created[contact]
        speeds[channel].append((touched - at).total_seconds())
    return {
        ch: {
            "leads": leads[ch],
            "deals_won": won[ch],
            "lead_to_won": won[ch] / leads[ch],
            "speed_to_lead_median_s": statistics.median(speeds[ch]),
        }
        for ch in leads
    }


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class Stay:
    deal_id: str
    rep_id: str | None
    stage: str
    entered: datetime
    left: datetime | None  # None while the deal is still in the stage

    @property
    def days(self) -> float | None:
        return None if self.left is None else (self.left - self.entered).total_seconds() / 86_400


def stays(events: Iterable[DemoEvent]) -> list[Stay]:
    """Every stay of every deal: a stage change enters a stage and ends the stay before it, a win or
    loss ends the last one. A demo deal keeps the rep that created it, and never moves back."""
    creators: dict[str, str | None] = {}
    moves: dict[str, list[DemoEvent]] = defaultdict(list)
    closes: dict[str, datetime] = {}
    for e in events:
        if e.deal_id is None:
            continue
        if e.type == "deal.created":
            creators[e.deal_id] = e.rep_id
        elif e.type == "deal.stage_changed":
            moves[e.deal_id].append(e)
        elif e.type in ("deal.won", "deal.lost"):
            closes[e.deal_id] = e.occurred_at
    out = []
    for deal_id, changes in moves.items():
        changes.sort(key=lambda e: e.occurred_at)
        ends = [c.occurred_at for c in changes[1:]] + [closes.get(deal_id)]
        for change, end in zip(changes, ends, strict=True):
            out.append(Stay(deal_id, creators.get(deal_id), change.stage or "", change.occurred_at, end))
    return out


def p90(values: Iterable[float]) -> float:
    """The 90th percentile, interpolated linearly between the closest ranks (numpy's default)."""
    return statistics.quantiles(sorted(values), n=10, method="inclusive")[8]


def open_deals(events: Iterable[DemoEvent]) -> dict[str, tuple[int, date | None, str | None]]:
    """Each deal without a win or loss: its amount, its newest close date and its rep."""
    amounts: dict[str, tuple[int, str | None]] = {}
    dates: dict[str, tuple[datetime, str]] = {}
    closed = set()
    for e in events:
        if e.deal_id is None or not e.type.startswith("deal."):
            continue
        if e.type == "deal.created":
            amounts[e.deal_id] = (e.amount or 0, e.rep_id)
        elif e.type in ("deal.won", "deal.lost"):
            closed.add(e.deal_id)
        if e.close_date is not None and (e.deal_id not in dates or dates[e.deal_id][0] < e.occurred_at):
            dates[e.deal_id] = (e.occurred_at, e.close_date)
    return {
        d: (amount, date.fromisoformat(dates[d][1]) if d in dates else None, rep)
        for d, (amount, rep) in amounts.items()
        if d not in closed
    }


def coverage(org: Organisation, events: list[DemoEvent], first: date, last: date) -> float:
    """SPEC 5.8: open amount closing in [first, last] / (the reps' quota over its months - won in it)."""
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    quota = sum(r.quota_monthly for r in org.reps) * months
    won = sum(e.amount or 0 for e in events if e.type == "deal.won" and first <= e.occurred_at.date() <= last)
    open_amount = sum(a for a, close, _ in open_deals(events).values() if close and first <= close <= last)
    return open_amount / (quota - won)
