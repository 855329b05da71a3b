"""An independent computation of the pipeline reads (SPEC 5.8) from what happened to each deal.

A `Deal` is told as facts, each at the moment it happened: created, put in a stage, its amount, close
date, forecast category, owner or contact set, won, lost. tests/system/test_pipeline_e2e.py sends
those facts through ingest the way HubSpot, Salesforce and a customer's own system report them; this
module works out from the facts alone, naively and in SPEC 5.8's words, what every read must answer.
It shares no code with the services.

The rules a deal's history follows (SPEC 5.8, docs/pipeline.md): a stage change enters the stage
(unless the deal is in it already) and completes the stay before it; a win or loss completes the
current stay; values are the newest; the owner at a moment is the newest owner set at or before it,
else the first one. A stay belongs to the owner at its entry, a creation to the owner then, a closed
deal to the owner at its close, an open deal to its current owner.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

DAY = timedelta(days=1)
CREATED, STAGE, AMOUNT, CLOSE_DATE, CATEGORY = "created", "stage", "amount", "close_date", "category"
OWNER, CONTACT, WON, LOST = "owner", "contact", "won", "lost"
_RANK = {CREATED: 0, WON: 2, LOST: 2}  # at one instant: the creation first, a close last


@dataclass(frozen=True)
class Fact:
    at: datetime
    kind: str
    value: str | None = None


@dataclass
class Deal:
    deal_id: str
    source: str  # api, hubspot or salesforce: who reports it
    facts: list[Fact] = field(default_factory=list)


@dataclass(frozen=True)
class Rep:
    rep_id: str
    team: str
    quota_monthly: Decimal | None
    hubspot_owner_id: str | None = None
    salesforce_user_id: str | None = None


@dataclass
class Stay:
    stage: str
    entered: datetime
    rep: str | None
    left: datetime | None = None
    next: str | None = None


@dataclass
class History:
    """A deal as its facts make it."""

    deal_id: str
    created_at: datetime
    owners: list[tuple[datetime, str]]
    values: dict[str, list[tuple[datetime, str | None]]]
    stays: list[Stay] = field(default_factory=list)
    status: str = "open"
    closed_at: datetime | None = None

    def owner_at(self, at: datetime) -> str | None:
        before = [rep for when, rep in self.owners if when <= at]
        return before[-1] if before else self.owners[0][1] if self.owners else None

    @property
    def rep(self) -> str | None:
        if self.closed_at is not None:
            return self.owner_at(self.closed_at)
        return self.owners[-1][1] if self.owners else None

    @property
    def created_rep(self) -> str | None:
        return self.owner_at(self.created_at)

    def value(self, kind: str) -> str | None:
        changes = self.values.get(kind)
        return changes[-1][1] if changes else None

    @property
    def amount(self) -> Decimal | None:
        found = self.value(AMOUNT)
        return None if found is None else Decimal(found)

    @property
    def close_date(self) -> date | None:
        found = self.value(CLOSE_DATE)
        return None if found is None else date.fromisoformat(found)

    def close_date_at(self, at: datetime) -> date | None:
        before = [v for when, v in self.values.get(CLOSE_DATE, []) if when <= at]
        return date.fromisoformat(before[-1]) if before and before[-1] else None

    def previous_close_date(self) -> date | None:
        """The newest close date other than the current one."""
        current = self.value(CLOSE_DATE)
        for _, v in reversed(self.values.get(CLOSE_DATE, [])):
            if v != current:
                return None if v is None else date.fromisoformat(v)
        return None

    @property
    def stage(self) -> str | None:
        return self.stays[-1].stage if self.stays else None

    @property
    def stage_entered_at(self) -> datetime | None:
        return self.stays[-1].entered if self.stays else None


def history(deal: Deal) -> History:
    facts = sorted(deal.facts, key=lambda f: (f.at, _RANK.get(f.kind, 1)))
    created = [f.at for f in facts if f.kind == CREATED]
    owners = [(f.at, f.value) for f in facts if f.kind == OWNER and f.value is not None]
    values: dict[str, list[tuple[datetime, str | None]]] = defaultdict(list)
    h = History(deal.deal_id, created[0], owners, values)
    for f in facts:
        current = h.stays[-1] if h.stays else None
        if f.kind == STAGE:
            assert f.value is not None, f
            if h.status == "open" and current is not None and current.stage == f.value:
                continue
            if h.status == "open" and current is not None:
                current.left, current.next = f.at, f.value
            h.stays.append(Stay(f.value, f.at, h.owner_at(f.at)))
            h.status, h.closed_at = "open", None  # a closed deal put in a stage is open again
        elif f.kind in (WON, LOST):
            assert h.status == "open", f  # stories close a deal once, or again after reopening it
            if current is not None:
                current.left, current.next = f.at, f.kind
            h.status, h.closed_at = f.kind, f.at
        elif f.kind in (AMOUNT, CLOSE_DATE, CATEGORY, CONTACT):
            values[f.kind].append((f.at, f.value))
    return h


# --- the rows the history is kept in --------------------------------------------------------------


def deal_row(h: History) -> dict[str, Any]:
    return {
        "deal_id": h.deal_id, "rep_id": h.rep, "created_rep_id": h.created_rep,
        "contact_id": h.value(CONTACT), "created_at": h.created_at, "status": h.status,
        "closed_at": h.closed_at, "stage": h.stage, "stage_entered_at": h.stage_entered_at,
        "amount": h.amount, "close_date": h.close_date, "forecast_category": h.value(CATEGORY),
    }  # fmt: skip


def stay_rows(h: History) -> list[dict[str, Any]]:
    return [
        {
            "deal_id": h.deal_id,
            "entered_at": s.entered,
            "stage": s.stage,
            "left_at": s.left,
            "next": s.next,
            "rep_id": s.rep,
            "deal_created_at": h.created_at,
            "reached_later": list(dict.fromkeys(t.stage for t in h.stays[i + 1 :])),
            "won_after": h.status == WON,
        }
        for i, s in enumerate(h.stays)
    ]


# --- the reads -----------------------------------------------------------------------------------


def bounds(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants of `first` 00:00 and of the midnight after `last`, in `zone`."""
    return datetime.combine(first, time(), zone), datetime.combine(last + DAY, time(), zone)


def days(since: datetime, until: datetime) -> float:
    return (until - since).total_seconds() / 86400


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _ratio(a: float | Decimal, b: int) -> float | None:
    return float(a) / b if b else None


Order = list[tuple[str, float | None, bool]]  # (stage, probability, set by the tenant)


def stage_order(hs: Iterable[History], configured: Sequence[tuple[str, float | None]]) -> Order:
    """The tenant's stages, then every other stage in the order first entered."""
    first: dict[str, datetime] = {}
    for h in hs:
        for s in h.stays:
            first[s.stage] = min(first.get(s.stage, s.entered), s.entered)
    named = {name for name, _ in configured}
    rest = sorted((s for s in first if s not in named), key=lambda s: (first[s], s))
    return [(n, p, True) for n, p in configured] + [(n, None, False) for n in rest]


def stages(
    hs: Sequence[History], order: Order, lo: datetime, hi: datetime, reps: set[str] | None = None
) -> list[dict[str, Any]]:
    """Per stage over the deals created in [lo, hi): of `reps`' stays (owner at entry) if given."""
    position = {name: i for i, (name, _, _) in enumerate(order)}
    out = []
    for i, (name, probability, _) in enumerate(order):
        entered = advanced = won = 0
        spent: list[float] = []
        for h in hs:
            if not lo <= h.created_at < hi:
                continue
            mine = [j for j, s in enumerate(h.stays) if s.stage == name and (reps is None or s.rep in reps)]
            if not mine:
                continue
            entered += 1
            won += h.status == WON
            later = any(position[t.stage] > i for j in mine for t in h.stays[j + 1 :])
            advanced += h.status == WON or later
            stays = [h.stays[j] for j in mine]
            spent += [days(s.entered, s.left) for s in stays if s.left is not None]
        open_now = sum(h.status == "open" and h.stage == name and (reps is None or h.rep in reps) for h in hs)
        out.append({
            "stage": name, "position": i, "probability": probability, "entered": entered,
            "advanced": advanced, "conversion": _ratio(advanced, entered), "won": won,
            "won_from_stage": _ratio(won, entered), "median_days_in_stage": _pct(spent, 50),
            "p90_days_in_stage": _pct(spent, 90), "open_now": open_now,
        })  # fmt: skip
    return out


def velocity(
    hs: Sequence[History], lo: datetime, hi: datetime, key: Callable[[str | None], str | None],
    keys: Iterable[str],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Per key (`key` of the owner) and in total: the groups' entries and the total."""
    groups: dict[str | None, list[History]] = defaultdict(list)
    created: dict[str | None, int] = defaultdict(int)
    for h in hs:
        if h.closed_at is not None and lo <= h.closed_at < hi:
            groups[key(h.rep)].append(h)
        if lo <= h.created_at < hi:
            created[key(h.created_rep)] += 1
    listed = sorted(set(keys) | set(groups) | set(created), key=lambda k: (k is None, k or ""))
    entries = [{"key": k, **_velocity(groups[k], created[k])} for k in listed]
    everything = [h for k in listed for h in groups[k]]
    return entries, _velocity(everything, sum(created.values()))


def _velocity(closed: Sequence[History], opportunities: int) -> dict[str, Any]:
    won = [h for h in closed if h.status == WON]
    lost = sum(1 for h in closed if h.status == LOST)
    revenue = sum((h.amount or Decimal(0) for h in won), Decimal(0))
    rate, size = _ratio(len(won), len(won) + lost), _ratio(revenue, len(won))
    cycle = float(np.median([days(h.created_at, h.closed_at) for h in won if h.closed_at])) if won else None
    speed = opportunities * rate * size / cycle if rate is not None and size is not None and cycle else None
    return {
        "won": len(won), "lost": lost, "win_rate": rate, "avg_deal_size": size, "cycle_days_median": cycle,
        "opportunities": opportunities, "velocity_per_day": speed,
    }  # fmt: skip


def probabilities(hs: Sequence[History], order: Order, lo: datetime, hi: datetime) -> dict[str, float | None]:
    """Each stage's probability: the tenant's, else its won_from_stage over deals created in [lo, hi)."""
    history_ = {s["stage"]: s["won_from_stage"] for s in stages(hs, order, lo, hi)}
    return {name: p if p is not None else history_[name] for name, p, _ in order}


@dataclass
class _Sums:
    open_count: int = 0
    open_amount: Decimal = Decimal(0)
    weighted: float = 0.0
    commit: Decimal = Decimal(0)
    best_case: Decimal = Decimal(0)
    won: Decimal = Decimal(0)
    without_probability: int = 0
    quota_monthly: Decimal | None = None

    def add(self, o: _Sums) -> None:
        self.open_count += o.open_count
        self.open_amount += o.open_amount
        self.weighted += o.weighted
        self.commit += o.commit
        self.best_case += o.best_case
        self.won += o.won
        self.without_probability += o.without_probability
        if o.quota_monthly is not None:
            self.quota_monthly = (self.quota_monthly or Decimal(0)) + o.quota_monthly

    def out(self, months: int) -> dict[str, Any]:
        quota = None if self.quota_monthly is None else self.quota_monthly * months
        gap = None if quota is None else quota - self.won
        return {
            "open_count": self.open_count, "open_amount": float(self.open_amount), "weighted": self.weighted,
            "commit": float(self.commit), "best_case": float(self.best_case), "won": float(self.won),
            "quota": None if quota is None else float(quota),
            "coverage": float(self.open_amount / gap) if gap is not None and gap > 0 else None,
            "projection": float(self.won) + self.weighted, "without_probability": self.without_probability,
        }  # fmt: skip


def forecast(
    hs: Sequence[History], reps: Sequence[Rep], p: dict[str, float | None], first: date, last: date,
    months: int, zone: ZoneInfo,
) -> dict[str, Any]:  # fmt: skip
    """`reps`, `teams` and `total` of the forecast of the period first..last."""
    lo, hi = bounds(first, last, zone)
    per: dict[str | None, _Sums] = {r.rep_id: _Sums(quota_monthly=r.quota_monthly) for r in reps}
    for h in hs:
        amount = h.amount
        if h.status == "open" and h.close_date is not None and first <= h.close_date <= last:
            s = per.setdefault(h.rep, _Sums())
            s.open_count += 1
            s.open_amount += amount or 0
            chance = p.get(h.stage) if h.stage is not None else None
            s.without_probability += chance is None
            s.weighted += float(amount) * chance if chance is not None and amount is not None else 0.0
            category = h.value(CATEGORY)
            s.commit += (amount or 0) if category == "commit" else 0
            s.best_case += (amount or 0) if category in ("commit", "best_case") else 0
        if h.status == WON and h.closed_at is not None and lo <= h.closed_at < hi:
            per.setdefault(h.rep, _Sums()).won += amount or 0
    team_of = {r.rep_id: r.team for r in reps}
    teams: dict[str, _Sums] = defaultdict(_Sums)
    total = _Sums()
    for rep, sums in per.items():
        total.add(sums)
        if rep in team_of:
            teams[team_of[rep]].add(sums)
    owners = sorted(per, key=lambda r: (r is None, r or ""))
    return {
        "reps": [{"rep_id": r, "team": team_of.get(r or ""), **per[r].out(months)} for r in owners],
        "teams": [
            {"team": t, "reps": sorted(r.rep_id for r in reps if r.team == t), **teams[t].out(months)}
            for t in sorted(teams)
        ],
        "total": total.out(months),
    }


def _listed(
    h: History, reasons: list[str], days_in_stage: float | None, previous: date | None
) -> dict[str, Any]:
    return {
        "deal_id": h.deal_id, "rep_id": h.rep, "stage": h.stage,
        "amount": None if h.amount is None else float(h.amount), "days_in_stage": days_in_stage,
        "close_date": None if h.close_date is None else str(h.close_date),
        "previous_close_date": None if previous is None else str(previous),
        "reason": reasons[0], "reasons": reasons,
    }  # fmt: skip


def _largest_first(item: dict[str, Any]) -> tuple[bool, float, str]:
    return (item["amount"] is None, -(item["amount"] or 0), item["deal_id"])


def slipped(
    hs: Sequence[History], first: date, last: date, zone: ZoneInfo, as_of: datetime
) -> list[dict[str, Any]]:
    """Deals whose close date at the period's first midnight lay in it and now lies after it, or that
    were lost since; the largest first."""
    lo, _ = bounds(first, last, zone)
    out = []
    for h in hs:
        then = h.close_date_at(lo)
        if then is None or not first <= then <= last:
            continue
        moved = h.close_date is not None and h.close_date > last
        lost = h.status == LOST and h.closed_at is not None and h.closed_at >= lo
        reasons = [name for name, on in (("close_date_moved", moved), ("lost", lost)) if on]
        if reasons:
            entered = h.stage_entered_at
            spent = None if entered is None else days(entered, h.closed_at or as_of)
            out.append(_listed(h, reasons, spent, then))
    return sorted(out, key=_largest_first)


def stale(
    hs: Sequence[History], lo: datetime, hi: datetime, as_of: datetime, stale_days: int,
    last_activity: dict[str, datetime],
) -> list[dict[str, Any]]:  # fmt: skip
    """Open deals longer in their stage than its p90 over the stays completed in [lo, hi), or whose
    contact had no call, email or meeting for `stale_days` (since the deal's creation if never)."""
    spent: dict[str, list[float]] = defaultdict(list)
    for h in hs:
        for s in h.stays:
            if s.left is not None and lo <= s.left < hi:
                spent[s.stage].append(days(s.entered, s.left))
    out = []
    for h in hs:
        if h.status != "open":
            continue
        entered = h.stage_entered_at
        in_stage = None if entered is None else days(entered, as_of)
        p90 = _pct(spent[h.stage], 90) if h.stage is not None else None
        over = in_stage is not None and p90 is not None and in_stage > p90
        contact = h.value(CONTACT)
        since = last_activity.get(contact or "", h.created_at)
        quiet = contact is not None and since < as_of - stale_days * DAY
        reasons = [name for name, on in (("days_in_stage_over_p90", over), ("no_activity", quiet)) if on]
        if reasons:
            out.append(_listed(h, reasons, in_stage, h.previous_close_date()))
    return sorted(out, key=_largest_first)
