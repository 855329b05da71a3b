"""The demo organisation's pipeline: close dates, their pushes, forecast categories, follow-ups, and
the planted structure the pipeline reports should find. Pure and deterministic.

`events` takes the simulated activity (`devstack.demo.simulate.events`) and returns it with:

- every deal's expected close date (set at creation, about three weeks out), pushed when the date
  passes with the deal still open, and set to the day the deal closes; its forecast category
  (`pipeline`, then `best_case` once the presentation is scheduled);
- a follow-up email to the deal's contact at each stage change, except for a few deals that go dark
  (DARK_SHARE): those end up stale for want of activity;
- the staller (`PipelinePlant.staller`, a veteran of typical skill): his deals wait weeks longer in
  STALL_STAGE before they close, so that stage's days stand out for him and his open deals there
  are stale;
- larger, longer opportunities grown from the veterans' older leads, open at the end, whose close
  dates fill the current quarter to about COVERAGE_TARGETS[0] of what is left of its quota and the
  next one to only COVERAGE_TARGETS[1]: the next quarter is under-covered.

The stage order and probabilities go to `PUT /v1/pipeline/stages` (`stages_body`).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from devstack.demo.model import Organisation, Rep
from devstack.demo.simulate import HUBSPOT_DEALSTAGE_SUBSCRIPTION, HUBSPOT_PORTAL, DemoEvent

STAGES: tuple[tuple[str, float], ...] = (
    ("appointmentscheduled", 0.1),
    ("qualifiedtobuy", 0.3),
    ("presentationscheduled", 0.5),
    ("decisionmakerboughtin", 0.7),
    ("contractsent", 0.85),
)
STALL_STAGE = "presentationscheduled"
STALL_DAYS = 35.0  # median of the extra days the staller's deals wait in STALL_STAGE
EXPECTED_CYCLE_DAYS = 21
DARK_SHARE = 0.06
COVERAGE_TARGETS = (1.2, 0.5)  # open amount / (quota - won): the current quarter, the next one
LARGE_DEAL_MEDIAN = 45_000
LARGE_STAGE_DAYS = 9.0  # median days a larger opportunity spends in a stage
_OFFSET = 800_000_000  # keeps the pipeline's vendor numbers apart from the simulation's
_DAY_S = 86_400


@dataclass(frozen=True)
class PipelinePlant:
    """What the pipeline reports should find, in the API's terms."""

    staller: str
    stall_stage: str
    current_quarter: str  # YYYY-Qn of the organisation's last day
    next_quarter: str
    coverage: tuple[float, float]  # the coverage aimed at: current quarter, next quarter


@dataclass(frozen=True)
class Quarter:
    year: int
    number: int

    @classmethod
    def of(cls, day: date) -> Quarter:
        return cls(day.year, (day.month - 1) // 3 + 1)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-Q{self.number}"

    @property
    def first(self) -> date:
        return date(self.year, 3 * self.number - 2, 1)

    @property
    def last(self) -> date:
        return self.following.first - timedelta(days=1)

    @property
    def following(self) -> Quarter:
        return Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)

    def holds(self, day: date) -> bool:
        return self.first <= day <= self.last


def plant(org: Organisation) -> PipelinePlant:
    current = Quarter.of(org.last_day)
    return PipelinePlant(
        staller=_staller(org).rep_id,
        stall_stage=STALL_STAGE,
        current_quarter=current.label,
        next_quarter=current.following.label,
        coverage=COVERAGE_TARGETS,
    )


def stages_body() -> dict[str, Any]:
    """The body of `PUT /v1/pipeline/stages`: HubSpot's default sales pipeline, in order."""
    return {"stages": [{"name": name, "probability": p} for name, p in STAGES]}


def events(org: Organisation, activity: Iterable[DemoEvent]) -> list[DemoEvent]:
    """`activity` with the pipeline's close dates, pushes, categories, follow-ups and planted deals."""
    return _Pipeline(org).run(list(activity))


def _planted(org: Organisation) -> set[str]:
    return {*org.plant.gaps, org.plant.monologuer, org.plant.labeller}


def _staller(org: Organisation) -> Rep:
    """The veteran of the most typical skill among those no other finding is planted on."""
    taken = _planted(org)
    veterans = sorted(
        (r for r in org.reps if r.cohort == "veteran" and r.rep_id not in taken),
        key=lambda r: (r.skill, r.rep_id),
    )
    return veterans[len(veterans) // 2]


def open_amounts(events: Iterable[DemoEvent]) -> tuple[dict[str, int], dict[str, date | None]]:
    """The amount and latest close date (by event time) of each deal still open after `events`."""
    amount: dict[str, int] = {}
    latest: dict[str, tuple[datetime, date | None]] = {}
    closed: set[str] = set()
    for e in events:
        if e.deal_id is None or not e.type.startswith("deal."):
            continue
        if e.type in ("deal.won", "deal.lost"):
            closed.add(e.deal_id)
        if e.type == "deal.created" and e.amount is not None:
            amount[e.deal_id] = e.amount
        if e.close_date is not None and (e.deal_id not in latest or latest[e.deal_id][0] <= e.occurred_at):
            latest[e.deal_id] = (e.occurred_at, date.fromisoformat(e.close_date))
    open_ids = set(amount) - closed
    return {d: amount[d] for d in open_ids}, {d: latest.get(d, (None, None))[1] for d in open_ids}


class _Pipeline:
    def __init__(self, org: Organisation) -> None:
        self.org = org
        self.plant = plant(org)
        self.rng = random.Random(f"salesloop-demo-pipeline:{org.seed}")
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _api_id(self) -> str:
        return f"demo-{self.org.namespace}-p{self._next():07d}"

    def _vendor_number(self) -> int:
        return self.org.namespace * 10**9 + _OFFSET + self._next()

    def run(self, activity: list[DemoEvent]) -> list[DemoEvent]:
        by_deal: dict[str, list[DemoEvent]] = defaultdict(list)
        out: list[DemoEvent] = []
        for e in activity:
            if e.deal_id is not None and e.type.startswith("deal."):
                by_deal[e.deal_id].append(e)
            else:
                out.append(e)
        for deal in by_deal.values():
            out.extend(self._story(sorted(deal, key=lambda e: e.occurred_at)))
        out.extend(self._coverage(out))
        return out

    # --- the simulated deals ------------------------------------------------------------------------

    def _story(self, deal: list[DemoEvent]) -> Iterator[DemoEvent]:
        created = next((e for e in deal if e.type == "deal.created"), None)
        if created is None:
            yield from deal
            return
        stages = [e for e in deal if e.type == "deal.stage_changed"]
        close = next((e for e in deal if e.type in ("deal.won", "deal.lost")), None)
        if close is not None and created.rep_id == self.plant.staller:
            close = self._stalled(stages, close)
        expected = created.occurred_at.date() + timedelta(days=EXPECTED_CYCLE_DAYS + self.rng.randint(-4, 6))
        yield replace(created, close_date=expected.isoformat(), forecast_category="pipeline")
        yield from stages
        done_at = close.occurred_at if close is not None else self.org.end
        yield from self._pushes(created, expected, done_at)
        dark = self.rng.random() < DARK_SHARE
        for stage in stages:
            if stage.stage == STALL_STAGE:
                yield self._update(
                    created, stage.occurred_at + timedelta(hours=1), forecast_category="best_case"
                )
            if not dark:
                yield from self._follow_up(created, stage.occurred_at, done_at)
        if close is not None:
            yield replace(close, close_date=close.occurred_at.date().isoformat())

    def _stalled(self, stages: list[DemoEvent], close: DemoEvent) -> DemoEvent | None:
        """The staller's deal closes weeks later when it reached STALL_STAGE, or is still open."""
        if not any(s.stage == STALL_STAGE for s in stages):
            return close
        delay = self.rng.lognormvariate(math.log(STALL_DAYS * _DAY_S), 0.35)
        moved = close.occurred_at + timedelta(seconds=int(delay))
        return replace(close, occurred_at=moved) if moved < self.org.end else None

    def _pushes(self, created: DemoEvent, expected: date, done_at: datetime) -> Iterator[DemoEvent]:
        """The rep pushes the close date on the afternoon it passes with the deal still open."""
        day = expected
        while True:
            at = datetime.combine(day, time(15), tzinfo=UTC) + timedelta(minutes=self.rng.randint(0, 120))
            if at >= done_at or at >= self.org.end:
                return
            day = day + timedelta(days=self.rng.randint(10, 28))
            yield self._update(created, at, close_date=day.isoformat())

    def _update(self, deal: DemoEvent, at: datetime, **changes: Any) -> DemoEvent:
        return DemoEvent(
            self._api_id(), "deal.updated", at, "api", rep_id=deal.rep_id, deal_id=deal.deal_id, **changes
        )

    def _follow_up(self, deal: DemoEvent, after: datetime, done_at: datetime) -> Iterator[DemoEvent]:
        at = after + timedelta(seconds=self.rng.randint(3600, 6 * 3600))
        if at < done_at and at < self.org.end and deal.contact_id is not None:
            yield DemoEvent(
                self._api_id(), "email.sent", at, "api", rep_id=deal.rep_id, contact_id=deal.contact_id,
                direction="outbound",
            )  # fmt: skip

    # --- the larger opportunities that set the quarters' coverage --------------------------------------

    def _coverage(self, so_far: list[DemoEvent]) -> Iterator[DemoEvent]:
        current = Quarter.of(self.org.last_day)
        quota = sum(r.quota_monthly for r in self.org.reps) * 3
        amounts, close_dates = open_amounts(so_far)
        leads = self._nurtured_leads(so_far)
        # Opportunities closing this quarter are further along (two to four stages past the first).
        plans = (
            (current, COVERAGE_TARGETS[0], range(2, 5)),
            (current.following, COVERAGE_TARGETS[1], range(3)),
        )
        for quarter, target, depth in plans:
            won = sum(
                e.amount or 0 for e in so_far if e.type == "deal.won" and quarter.holds(e.occurred_at.date())
            )
            have = sum(
                a for d, a in amounts.items() if (c := close_dates[d]) is not None and quarter.holds(c)
            )
            need = target * (quota - won) - have
            while need > 0 and leads:
                amount = int(round(self.rng.lognormvariate(math.log(LARGE_DEAL_MEDIAN), 0.4), -3))
                lead = leads.pop(self.rng.randrange(len(leads)))
                yield from self._large_deal(lead, quarter, amount, depth)
                need -= amount

    def _nurtured_leads(self, so_far: list[DemoEvent]) -> list[DemoEvent]:
        """Leads of the veterans no finding is planted on, two months old or more, that became no
        deal: the larger opportunities grow out of them, keeping their contact and channel."""
        taken = {*_planted(self.org), self.plant.staller}
        owners = {r.rep_id for r in self.org.reps if r.cohort == "veteran" and r.rep_id not in taken}
        with_deal = {e.contact_id for e in so_far if e.type == "deal.created"}
        latest = self.org.end - timedelta(days=60)
        return [
            e
            for e in so_far
            if e.type == "lead.created"
            and e.rep_id in owners
            and e.contact_id not in with_deal
            and e.occurred_at < latest
        ]

    def _large_deal(
        self, lead: DemoEvent, quarter: Quarter, amount: int, depth: range
    ) -> Iterator[DemoEvent]:
        """An opportunity that entered its latest stage in the last week (it is moving, not stale),
        after about LARGE_STAGE_DAYS in each earlier one."""
        rng, end = self.rng, self.org.end
        deal_id = str(self._vendor_number())
        entries = [end - timedelta(seconds=rng.randint(_DAY_S, 7 * _DAY_S))]
        for _ in range(rng.choice(depth)):
            stay = rng.lognormvariate(math.log(LARGE_STAGE_DAYS * _DAY_S), 0.3)
            entries.insert(0, entries[0] - timedelta(seconds=int(stay)))
        low = min(max(quarter.first, self.org.last_day + timedelta(days=1)), quarter.last)
        closes = low + timedelta(days=rng.randint(0, (quarter.last - low).days))
        deal = DemoEvent(
            self._api_id(), "deal.created", entries[0] - timedelta(minutes=5), "api", rep_id=lead.rep_id,
            contact_id=lead.contact_id, deal_id=deal_id, channel=lead.channel, amount=amount,
            close_date=closes.isoformat(), forecast_category="pipeline",
        )  # fmt: skip
        yield deal
        for index, ((stage, _), at) in enumerate(zip(STAGES, entries, strict=False)):
            yield self._hubspot_stage(deal_id, stage, at)
            category = {3: "best_case", 4: "commit"}.get(index)
            if category is not None:
                yield self._update(deal, at + timedelta(hours=2), forecast_category=category)
            yield from self._follow_up(deal, at, end)

    def _hubspot_stage(self, deal_id: str, stage: str, at: datetime) -> DemoEvent:
        number = self._vendor_number()
        event_id = f"hubspot:{HUBSPOT_PORTAL}:{number}:{HUBSPOT_DEALSTAGE_SUBSCRIPTION}:{deal_id}"
        return DemoEvent(
            event_id, "deal.stage_changed", at, "hubspot", deal_id=deal_id, stage=stage, ref=str(number)
        )
