"""What the feedback API should say about a demo organisation, computed straight from its events.

The counting here is deliberately naive and shares no code with the aggregator; the statistics
(peer gaps, correlations, ramps) reuse the API's pure service functions, whose own tests pin them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from devstack.demo.model import DAYS_PER_MONTH, Organisation
from devstack.demo.simulate import DemoEvent
from services.api.coaching.service import CoachingRep, RepCoaching, coach_scope, observations
from services.api.hiring.service import TraitCorrelation, trait_correlations
from services.api.training.service import RampCohort, RampRep, month_index, ramp


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


def rep_metrics(org: Organisation, events: list[DemoEvent], window: Window) -> dict[str, dict[str, Any]]:
    out = {}
    counts = rep_counts(events, window)
    for rep in org.reps:
        c = counts.get(rep.rep_id, {})
        get = c.get
        out[rep.rep_id] = {
            **c,
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
    cards = {r.rep_id: {k: float(v) for k, v in r.traits.items()} for r in org.reps}
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
