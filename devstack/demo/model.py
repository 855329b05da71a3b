"""The demo organisation: a seeded model of a sales team whose structure is known in advance. Pure.

Everything the feedback API is meant to find is planted here on purpose, so that a newcomer can
check each answer against the truth (`Plant`):

- hiring: a rep's skill (the odds of winning a deal) grows with the scorecard traits, coachability
  by far the most, so coachability has the strongest correlation with quota attainment;
- training: two hire cohorts ramp at different speeds, and within each, reps who pass every
  certification module by month 3 ramp faster still;
- coaching: two named veterans have one clear gap each (a connect rate, a meeting rate far below
  their peers'), everybody else varies a little around the team's norms;
- conversations: calls of the last TRANSCRIBED_DAYS days have transcripts (devstack.demo.recordings).
  One veteran talks in long monologues and never labels (his longest monologue and talk share stand
  out); another labels, mirrors, asks calibrated questions and summarises (the most labels per call)
  and wins more deals than skill alone would (LABELLER_WIN_BOOST);
- demand generation: acquisition channels with lead-to-won rates about a factor two apart and with
  clearly different speeds to lead;
- scaling: on top of the `reps` asked for, a hiring wave of WAVE_SHARE more reps starts in the last
  fortnight (still onboarding when the data ends: no activity yet), so the sales headcount grows by
  more than a quarter in the last quarter; every rep has a fully loaded `monthly_cost`. The billing
  (devstack.demo.billing) plants the rest of the unit economics.

`build` returns the roster and the plan; `devstack.demo.simulate` turns it into events.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from devstack.demo.transcripts import NORMAL, TalkStyle, styles

MIN_REPS = 12
MAX_REPS = 1_000
MIN_DAYS = 90
TRAITS: tuple[str, ...] = ("coachability", "curiosity", "prior_success", "intelligence", "work_ethic")
# Log-skill per standard deviation of a trait score: coachability dominates by design.
TRAIT_EFFECTS: dict[str, float] = {
    "coachability": 0.7,
    "curiosity": 0.05,
    "prior_success": 0.12,
    "intelligence": 0.0,
    "work_ethic": 0.08,
}
MODULES: tuple[str, ...] = ("product", "discovery", "demo", "negotiation")
CERTIFY_BY_DAYS = 84  # comfortably inside "month 3" however the calendar falls
DAYS_PER_MONTH = 365.25 / 12
LEADS_PER_REP_DAY = 1.5
# A rep's activity and rates vary a little around these; reply_rate is of outbound emails.
NORMS: dict[str, float] = {
    "dials_per_day": 4.5,
    "connect_rate": 0.25,
    "meeting_rate": 0.25,
    "show_rate": 0.80,
    "reply_rate": 0.08,
}
TEAMS: tuple[str, ...] = ("east", "west")  # east calls through Twilio, west through Aircall
TRANSCRIBED_DAYS = 90  # calls and recorded meetings of this many days before the end have transcripts
LABELLER_WIN_BOOST = 2.0  # multiplies the odds of winning of the rep who labels well
WAVE_SHARE = 0.3  # the hiring wave, as a share of the `reps` asked for (rounded up)
ONBOARDING_DAYS = 14  # a rep of the wave sells from this many days after its hire
MONTHLY_COST = {"veteran": 12_500, "new": 10_000}  # fully loaded, per rep

Cohort = Literal["veteran", "slow", "fast", "wave"]

FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Liam",
    "Maya", "Nils", "Olga", "Priya", "Quinn", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Yara",
    "Zoe", "Arjun", "Bea", "Carlos", "Dana", "Emil",
)  # fmt: skip
LAST_NAMES = (
    "Adler", "Brandt", "Costa", "Diallo", "Eriksen", "Fischer", "Garcia", "Haas", "Ito", "Jensen",
    "Kowalski", "Laurent", "Moreau", "Novak", "Okafor", "Petrov", "Quist", "Rossi", "Suzuki", "Tan",
)  # fmt: skip


@dataclass(frozen=True)
class ChannelModel:
    """An acquisition channel: its funnel, how fast its leads are worked and what a deal is worth."""

    name: str
    share: float  # of all inbound leads
    p_mql: float
    p_sql: float  # given mql
    p_deal: float  # given sql
    p_win: float  # given a deal, for a fully ramped rep of average skill
    speed_median_s: float  # lead.created -> first touch
    amount_median: int
    cost_per_lead: int

    @property
    def lead_to_won(self) -> float:
        return self.p_mql * self.p_sql * self.p_deal * self.p_win


# Lead-to-won roughly halves from one channel to the next, so the ranking survives sampling noise.
CHANNELS: tuple[ChannelModel, ...] = (
    ChannelModel("referral", 0.10, 0.90, 0.80, 0.90, 0.60, 3_600, 18_000, 60),
    ChannelModel("organic_search", 0.25, 0.75, 0.60, 0.80, 0.45, 900, 12_000, 40),
    ChannelModel("paid_search", 0.30, 0.60, 0.50, 0.75, 0.35, 240, 10_000, 160),
    ChannelModel("events", 0.15, 0.50, 0.40, 0.70, 0.28, 129_600, 14_000, 280),
    ChannelModel("paid_social", 0.20, 0.40, 0.30, 0.60, 0.22, 10_800, 8_000, 240),
)


@dataclass(frozen=True)
class Rep:
    rep_id: str
    name: str
    team: str
    cohort: Cohort
    hired_at: date
    quota_monthly: int
    traits: dict[str, int]
    phone: str
    aircall_user_id: str
    hubspot_owner_id: str
    email: str
    skill: float  # multiplies the odds of winning a deal
    dials_per_day: float
    connect_rate: float
    meeting_rate: float
    show_rate: float
    reply_rate: float
    ramp_tau_months: float  # 0 for veterans: fully ramped
    certified: bool | None  # passes every module by month 3; None: not in the programme (veterans, wave)
    monthly_cost: int  # fully loaded, tenant currency
    onboarding_days: int = 0  # days after its hire before the rep sells

    @property
    def sells_from(self) -> date:
        return self.hired_at + timedelta(days=self.onboarding_days)

    @property
    def calls_via(self) -> Literal["twilio", "aircall"]:
        return "twilio" if self.team == "east" else "aircall"

    def ramp(self, day: date) -> float:
        """The share of full productivity `day` falls at: 1 - exp(-months since hire / tau)."""
        if self.ramp_tau_months <= 0:
            return 1.0
        months = max((day - self.hired_at).days, 0) / DAYS_PER_MONTH
        return 1.0 - math.exp(-months / self.ramp_tau_months)


@dataclass(frozen=True)
class Plant:
    """What the API should find, stated in the API's own terms."""

    strongest_trait: str
    gaps: dict[str, str]  # rep_id -> the metric that rep is far below peers on
    slow_cohort: date
    fast_cohort: date
    channels_by_quality: tuple[str, ...]  # lead -> won, best first
    channels_by_speed: tuple[str, ...]  # speed to lead, fastest first
    monologuer: str  # a veteran: long monologues, high talk share, never a label
    labeller: str  # a veteran: the most labels per call, mirrors, summaries, and more wins
    transcribed_from: date  # the first day whose calls have transcripts
    hiring_wave: date  # the day the wave of new reps was hired, in the last quarter


@dataclass(frozen=True)
class Organisation:
    seed: int
    namespace: int  # 1..999, from seed and size: keeps the ids of different demo organisations apart
    start: date  # first simulated day
    end: datetime  # the instant the simulation stops: every event is before it
    reps: tuple[Rep, ...]
    channels: tuple[ChannelModel, ...]
    plant: Plant
    spend: dict[tuple[str, str], int]  # (channel, "YYYY-MM") -> spend in that month
    styles: dict[str, TalkStyle]  # rep_id -> how the rep talks on calls

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(microseconds=1)).date()

    def rep(self, rep_id: str) -> Rep:
        return next(r for r in self.reps if r.rep_id == rep_id)


def demo_end(now: datetime) -> datetime:
    """The simulation ends at the start of today (UTC): only full days, the same all day long."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)


def build(*, reps: int, days: int, seed: int, end: datetime) -> Organisation:
    """The roster and plan of a `reps`-strong team over the `days` days before `end`."""
    if not MIN_REPS <= reps <= MAX_REPS:
        raise ValueError(
            f"reps must be {MIN_REPS} to {MAX_REPS}: coaching needs peers, correlations ten reps"
        )
    if days < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS}: ramps need months of history")
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    rng = random.Random(seed)
    space = namespace(seed, reps, days)
    start = (end - timedelta(days=days)).date()
    slow_hire = _monday_on_or_after(start + timedelta(days=3))
    fast_hire = _monday_on_or_before(start + timedelta(days=min(days // 2, days - 62)))
    wave_size = math.ceil(WAVE_SHARE * reps)
    roster, spare_names = _roster(rng, space, reps, start, slow_hire, fast_hire, wave_size)
    # The gaps go to the two veterans of the most typical skill, who otherwise work to the team's
    # norms: then the gap is all that sets them apart.
    veterans = sorted((r for r in roster if r.cohort == "veteran"), key=lambda r: r.skill)
    middle = len(veterans) // 2
    connect_gap, meeting_gap = rng.sample(veterans[middle - 1 : middle + 1], 2)
    roster = [_with_gap(r, connect_gap.rep_id, meeting_gap.rep_id) for r in roster]
    plain = (connect_gap.rep_id, meeting_gap.rep_id)
    monologuer, labeller = _talkers([r for r in veterans if r.rep_id not in plain])
    roster = [_boosted(r) if r.rep_id == labeller else r for r in roster]
    plant = Plant(
        strongest_trait=max(TRAIT_EFFECTS, key=lambda t: TRAIT_EFFECTS[t]),
        gaps={connect_gap.rep_id: "connect_rate", meeting_gap.rep_id: "meeting_rate"},
        slow_cohort=slow_hire,
        fast_cohort=fast_hire,
        channels_by_quality=tuple(c.name for c in sorted(CHANNELS, key=lambda c: -c.lead_to_won)),
        channels_by_speed=tuple(c.name for c in sorted(CHANNELS, key=lambda c: c.speed_median_s)),
        monologuer=monologuer,
        labeller=labeller,
        transcribed_from=(end - timedelta(days=min(days, TRANSCRIBED_DAYS))).date(),
        hiring_wave=_monday_on_or_before(end.date() - timedelta(days=8)),
    )
    talk = styles(
        (r.rep_id for r in roster), monologuer=monologuer, labeller=labeller, plain=plain, seed=seed
    )
    wave = _wave(seed, space, reps, spare_names, plant.hiring_wave, roster[0].quota_monthly)
    talk.update({r.rep_id: NORMAL for r in wave})  # nobody in the wave has made a call yet
    spend = _spend(start, end, reps)
    return Organisation(seed, space, start, end, (*roster, *wave), CHANNELS, plant, spend, talk)


def namespace(seed: int, reps: int, days: int) -> int:
    """1..999, the same for the same seed and size. Event ids and vendor identities are drawn from
    it, so loading the same organisation again is recognised as duplicates, while another size or
    seed loaded into the same tenant neither merges with it nor collides with its aliases."""
    digest = hashlib.sha256(f"salesloop-demo:{seed}:{reps}:{days}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 999 + 1


def expected_monthly_revenue() -> float:
    """What a fully ramped rep of average skill wins per month from the inbound leads it is given."""
    per_lead = sum(c.share * c.lead_to_won * c.amount_median for c in CHANNELS)
    return LEADS_PER_REP_DAY * DAYS_PER_MONTH * per_lead


def _roster(
    rng: random.Random, space: int, n: int, start: date, slow_hire: date, fast_hire: date, spare: int
) -> tuple[list[Rep], list[tuple[str, str, str]]]:
    """The `n` reps of the team, and `spare` more names none of them has."""
    per_cohort = max(2, round(0.16 * n))
    sizes: dict[Cohort, int] = {"slow": per_cohort, "fast": per_cohort, "veteran": n - 2 * per_cohort}
    cohorts: list[Cohort] = [cohort for cohort, size in sizes.items() for _ in range(size)]
    rng.shuffle(cohorts)
    names = _names(rng, n + spare)  # the same first n names whatever `spare` is
    certified = {
        "slow": _certified_flags(rng, cohorts.count("slow"), 0.25),
        "fast": _certified_flags(rng, cohorts.count("fast"), 0.8),
    }
    quota = round(expected_monthly_revenue() * 1.1, -3)
    out = []
    for i, (cohort, (first, last, suffix)) in enumerate(zip(cohorts, names[:n], strict=True)):
        ident = space * 10_000 + i  # unique per rep, 7 digits at most
        traits = {t: min(10, max(1, round(rng.gauss(5.5, 1.8)))) for t in TRAITS}
        log_skill = sum(TRAIT_EFFECTS[t] * (traits[t] - 5.5) / 1.8 for t in TRAITS) + rng.gauss(0, 0.08)
        work = 0.08 * (traits["work_ethic"] - 5.5) / 1.8
        if cohort == "veteran":
            hired_at = _monday_on_or_before(start - timedelta(days=rng.randint(420, 1400)))
            tau, is_certified = 0.0, None
        else:
            hired_at = slow_hire if cohort == "slow" else fast_hire
            is_certified = certified[cohort].pop()
            base = 6.0 if cohort == "slow" else 0.8
            tau = base * (0.55 if is_certified else 1.0)
        out.append(
            Rep(
                rep_id=f"{first}-{last}{suffix and f'-{suffix}'}".lower(),
                name=f"{first} {last}{suffix and f' {suffix}'}",
                team=TEAMS[i % len(TEAMS)],
                cohort=cohort,
                hired_at=hired_at,
                quota_monthly=int(quota),
                traits=traits,
                phone=f"+1415{ident:07d}",
                aircall_user_id=str(1_000_000 + ident),
                hubspot_owner_id=str(50_000_000 + ident),
                email=f"{first}.{last}{suffix}@demo-sales.example".lower(),
                skill=math.exp(log_skill),
                dials_per_day=NORMS["dials_per_day"] * math.exp(work + rng.gauss(0, 0.06)),
                connect_rate=_clip(rng.gauss(NORMS["connect_rate"], 0.025), 0.18, 0.32),
                meeting_rate=_clip(rng.gauss(NORMS["meeting_rate"], 0.035), 0.16, 0.34),
                show_rate=_clip(rng.gauss(NORMS["show_rate"], 0.05), 0.65, 0.95),
                reply_rate=_clip(rng.gauss(NORMS["reply_rate"], 0.015), 0.04, 0.12),
                ramp_tau_months=tau,
                certified=is_certified,
                monthly_cost=MONTHLY_COST["veteran" if cohort == "veteran" else "new"],
            )
        )
    return out, names[n:]


def _wave(
    seed: int, space: int, n: int, names: list[tuple[str, str, str]], hired_at: date, quota: int
) -> list[Rep]:
    """The hiring wave: reps n, n+1, ... of the organisation, drawn from a random stream of their own
    (the rest of the organisation is the same with or without them), onboarding when the data ends."""
    rng = random.Random(f"salesloop-demo-wave:{seed}")
    out = []
    for i, (first, last, suffix) in enumerate(names, start=n):
        ident = space * 10_000 + i
        traits = {t: min(10, max(1, round(rng.gauss(5.5, 1.8)))) for t in TRAITS}
        log_skill = sum(TRAIT_EFFECTS[t] * (traits[t] - 5.5) / 1.8 for t in TRAITS) + rng.gauss(0, 0.08)
        out.append(
            Rep(
                rep_id=f"{first}-{last}{suffix and f'-{suffix}'}".lower(),
                name=f"{first} {last}{suffix and f' {suffix}'}",
                team=TEAMS[i % len(TEAMS)],
                cohort="wave",
                hired_at=hired_at,
                quota_monthly=quota,
                traits=traits,
                phone=f"+1415{ident:07d}",
                aircall_user_id=str(1_000_000 + ident),
                hubspot_owner_id=str(50_000_000 + ident),
                email=f"{first}.{last}{suffix}@demo-sales.example".lower(),
                skill=math.exp(log_skill),
                dials_per_day=NORMS["dials_per_day"],
                connect_rate=NORMS["connect_rate"],
                meeting_rate=NORMS["meeting_rate"],
                show_rate=NORMS["show_rate"],
                reply_rate=NORMS["reply_rate"],
                ramp_tau_months=3.0,
                certified=None,
                monthly_cost=MONTHLY_COST["new"],
                onboarding_days=ONBOARDING_DAYS,
            )
        )
    return out


def _names(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    """`n` distinct (first, last, suffix) names; the suffix numbers repeats once the names run out."""
    pool = [(first, last) for first in FIRST_NAMES for last in LAST_NAMES]
    rng.shuffle(pool)
    return [(*pool[i % len(pool)], str(i // len(pool) + 1) if i >= len(pool) else "") for i in range(n)]


def _certified_flags(rng: random.Random, n: int, share: float) -> list[bool]:
    """Exactly round(share * n) certified, at least one of each when there are two or more reps."""
    k = min(max(round(share * n), 1), n - 1) if n >= 2 else round(share * n)
    flags = [True] * k + [False] * (n - k)
    rng.shuffle(flags)
    return flags


def _with_gap(rep: Rep, connect_gap: str, meeting_gap: str) -> Rep:
    if rep.rep_id not in (connect_gap, meeting_gap):
        return rep
    norms = replace(
        rep,
        dials_per_day=NORMS["dials_per_day"],
        show_rate=NORMS["show_rate"],
        reply_rate=NORMS["reply_rate"],
    )
    if rep.rep_id == connect_gap:
        return replace(norms, connect_rate=0.08, meeting_rate=NORMS["meeting_rate"])
    return replace(norms, connect_rate=NORMS["connect_rate"], meeting_rate=0.06)


def _talkers(veterans: list[Rep]) -> tuple[str, str]:
    """The monologuer and the labeller among `veterans` (sorted by skill): the one of the most typical
    skill monologues, so his talk is all that sets him apart; a coachable one (the tactics are
    learned), at the upper quartile of coachability, labels and wins."""
    coachable = sorted(veterans, key=lambda r: (r.traits["coachability"], r.skill))
    labeller = coachable[len(coachable) * 3 // 4]
    rest = [r for r in veterans if r is not labeller]
    return rest[len(rest) // 2].rep_id, labeller.rep_id


def _boosted(rep: Rep) -> Rep:
    return replace(rep, skill=rep.skill * LABELLER_WIN_BOOST)


def _spend(start: date, end: datetime, reps: int) -> dict[tuple[str, str], int]:
    """Spend per channel and calendar month touched by the period, in proportion to its days in it."""
    out: dict[tuple[str, str], int] = {}
    day = start
    days_in: dict[str, int] = {}
    while day < end.date():
        month = f"{day.year:04d}-{day.month:02d}"
        days_in[month] = days_in.get(month, 0) + 1
        day += timedelta(days=1)
    for channel in CHANNELS:
        per_day = reps * LEADS_PER_REP_DAY * channel.share * channel.cost_per_lead
        for month, n in days_in.items():
            out[(channel.name, month)] = int(round(per_day * n, -2))
    return out


def _monday_on_or_after(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7)


def _monday_on_or_before(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))
