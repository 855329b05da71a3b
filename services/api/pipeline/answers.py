"""The SPEC 5.8 numbers from what the pipeline statements read (services/api/pipeline/queries.py).
Pure: no I/O, no clock; each formula once, for the rep, the team and the tenant alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from services.api.kit.sums import ratio
from services.api.pipeline.deal_queries import DealRow
from services.api.pipeline.queries import ForecastSums, StageRow, VelocityRow
from services.api.pipeline.schemas import DealOut, ForecastOut, StageStatsOut, VelocityOut

ZERO = Decimal(0)

# Why a deal is listed (`DealOut.reasons`), in the order the flags of its row come.
SLIPPED_REASONS = ("close_date_moved", "lost")
STALE_REASONS = ("days_in_stage_over_p90", "no_activity")


def stage_stats(rows: Sequence[StageRow]) -> list[StageStatsOut]:
    return [
        StageStatsOut(
            stage=r.name,
            position=i,
            probability=r.probability,
            entered=r.entered,
            advanced=r.advanced,
            conversion=ratio(r.advanced, r.entered),
            won=r.won,
            won_from_stage=ratio(r.won, r.entered),
            median_days_in_stage=r.median_days,
            p90_days_in_stage=r.p90_days,
            open_now=r.open_now,
        )
        for i, r in enumerate(rows)
    ]


def velocity_of(row: VelocityRow | None) -> VelocityOut:
    """A group's velocity; every factor null where its denominator is 0, and the velocity null when
    any factor is null (or the median cycle is 0 days)."""
    if row is None:
        return VelocityOut(
            won=0, lost=0, win_rate=None, avg_deal_size=None, cycle_days_median=None, opportunities=0,
            velocity_per_day=None,
        )  # fmt: skip
    win_rate = ratio(row.won, row.won + row.lost)
    size = ratio(row.revenue, row.won)
    cycle = row.cycle_median
    speed = None
    if win_rate is not None and size is not None and cycle:
        speed = row.opportunities * win_rate * size / cycle
    return VelocityOut(
        won=row.won,
        lost=row.lost,
        win_rate=win_rate,
        avg_deal_size=size,
        cycle_days_median=cycle,
        opportunities=row.opportunities,
        velocity_per_day=speed,
    )


@dataclass
class Forecast:
    """Sums of open deals closing in the period and of its wins, for any set of owners."""

    open_count: int = 0
    open_amount: Decimal = ZERO
    weighted: Decimal = ZERO
    commit: Decimal = ZERO
    best_case: Decimal = ZERO
    without_probability: int = 0
    won: Decimal = ZERO
    quota_monthly: Decimal | None = None
    reps: list[str] = field(default_factory=list)

    def add(self, s: ForecastSums) -> None:
        self.open_count += s.open_count
        self.open_amount += s.open_amount
        self.weighted += s.weighted
        self.commit += s.commit
        self.best_case += s.best_case
        self.without_probability += s.without_probability
        self.won += s.won

    def add_quota(self, quota_monthly: Decimal | None) -> None:
        """A rep's quota joins the sum; reps without one add nothing (null if no rep has one)."""
        if quota_monthly is not None:
            self.quota_monthly = (self.quota_monthly or ZERO) + quota_monthly

    def merge(self, other: Forecast) -> None:
        self.open_count += other.open_count
        self.open_amount += other.open_amount
        self.weighted += other.weighted
        self.commit += other.commit
        self.best_case += other.best_case
        self.without_probability += other.without_probability
        self.won += other.won
        self.add_quota(other.quota_monthly)

    def numbers(self, months: int) -> dict[str, float | int | None]:
        """The `ForecastOut` fields: quota over `months`, coverage null when quota - won <= 0."""
        quota = None if self.quota_monthly is None else self.quota_monthly * months
        gap = None if quota is None else quota - self.won
        return {
            "open_count": self.open_count,
            "open_amount": float(self.open_amount),
            "weighted": float(self.weighted),
            "commit": float(self.commit),
            "best_case": float(self.best_case),
            "won": float(self.won),
            "quota": None if quota is None else float(quota),
            "coverage": None if gap is None or gap <= 0 else float(self.open_amount / gap),
            "projection": float(self.won + self.weighted),
            "without_probability": self.without_probability,
        }

    def out(self, months: int) -> ForecastOut:
        return ForecastOut.model_validate(self.numbers(months))


def forecasts(
    sums: Iterable[ForecastSums], reps: Iterable[tuple[str, str | None, Decimal | None]]
) -> tuple[dict[str | None, Forecast], dict[str, Forecast], Forecast]:
    """Per owner (every rep, and any other owner with deals; None: deals without owner), per named
    team (its reps' sums and quotas), and the tenant's total."""
    by_rep: dict[str | None, Forecast] = {}
    team_of: dict[str, str | None] = {}
    for rep, team, quota in reps:
        team_of[rep] = team
        by_rep.setdefault(rep, Forecast()).add_quota(quota)
    for s in sums:
        by_rep.setdefault(s.rep_id, Forecast()).add(s)
    teams: dict[str, Forecast] = {}
    total = Forecast()
    for rep_id in sorted(by_rep, key=lambda r: (r is None, r or "")):
        found = by_rep[rep_id]
        total.merge(found)
        team = team_of.get(rep_id) if rep_id is not None else None
        if team is not None and rep_id is not None:
            teams.setdefault(team, Forecast()).merge(found)
            teams[team].reps.append(rep_id)
    return by_rep, teams, total


def parse_close_date(value: str | None) -> date | None:
    """A close date as the pipeline fold reads it from a change: its first ten characters as
    YYYY-MM-DD (a CRM may send a timestamp), None for anything else."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def deal_out(row: DealRow, reasons: tuple[str, str]) -> DealOut:
    flagged = [name for name, on in zip(reasons, (row.first_reason, row.second_reason), strict=True) if on]
    return DealOut(
        deal_id=row.deal_id,
        rep_id=row.rep_id,
        stage=row.stage,
        amount=None if row.amount is None else float(row.amount),
        days_in_stage=row.days_in_stage,
        close_date=row.close_date,
        previous_close_date=parse_close_date(row.close_date_then),
        reason=flagged[0],
        reasons=flagged,
    )


def largest_first(row: DealRow) -> tuple[bool, Decimal, str]:
    """The order deals are listed in: by amount, largest first (none last), then by id."""
    return (row.amount is None, -(row.amount or ZERO), row.deal_id)


def slipped_deals(rows: Iterable[DealRow], first: date, last: date) -> list[DealRow]:
    """The candidates whose close date at the period's start lay in the period, largest first."""
    found = []
    for row in rows:
        then = parse_close_date(row.close_date_then)
        if then is not None and first <= then <= last:
            found.append(row)
    return sorted(found, key=largest_first)
