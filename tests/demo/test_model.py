"""The demo organisation without any I/O: deterministic, valid, and its planted structure is in the
events themselves (measured with the API's own statistics, so the API has something true to find)."""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest

from devstack.demo import billing, model, pipeline, simulate
from devstack.demo.model import Organisation
from services.api.coaching.service import CONVERSATION_METRICS, RepCoaching
from services.api.kit.tenure import month_index
from services.api.training.service import Attempt, certified_reps
from services.core.events import BuyerEvent
from tests.demo import reference
from tests.demo.conftest import END, SMALL, SmallOrg


def last_days(org: Organisation, days: int) -> reference.Window:
    return reference.Window(org.last_day - timedelta(days=days - 1), org.last_day)


def whole(org: Organisation) -> reference.Window:
    return reference.Window(org.start, org.last_day)


def test_the_same_seed_and_end_give_the_same_events(small_org: SmallOrg) -> None:
    _, events = small_org
    org = model.build(**SMALL, end=END)
    again = billing.with_billing(org, pipeline.events(org, simulate.events(org)))
    assert [(e.via, e.canonical()) for e in again] == [(e.via, e.canonical()) for e in events]
    other = simulate.events(model.build(**{**SMALL, "seed": 8}, end=END))
    assert {e.event_id for e in other}.isdisjoint(e.event_id for e in events)


def test_events_are_valid_distinct_and_in_the_past(small_org: SmallOrg) -> None:
    org, events = small_org
    assert len({e.event_id for e in events}) == len(events)
    # Only the billing reaches back before the period: the installed base's subscriptions.
    assert all(org.start <= e.occurred_at.date() for e in events if e.via != "stripe")
    assert all(e.occurred_at < org.end for e in events)
    for e in events:
        BuyerEvent.model_validate(e.canonical(), context={"now": END, "currency": "USD"})
    vias = {e.via for e in events}
    assert vias == {"api", "twilio", "aircall", "sendgrid", "hubspot", "fathom", "stripe"}


def test_the_roster_is_what_the_plan_says(small_org: SmallOrg) -> None:
    org, _ = small_org
    wave = [r for r in org.reps if r.cohort == "wave"]
    assert len(wave) == 6  # 30 % on top of the 20 reps asked for
    assert len(org.reps) == 26
    assert len({r.rep_id for r in org.reps}) == 26
    for kind in ("phone", "aircall_user_id", "hubspot_owner_id", "email"):
        assert len({getattr(r, kind) for r in org.reps}) == 26
    cohorts = {r.cohort for r in org.reps}
    assert cohorts == {"veteran", "slow", "fast", "wave"}
    # The wave joined in the last fortnight and is still onboarding when the data ends.
    assert all(r.hired_at == org.plant.hiring_wave for r in wave)
    assert org.last_day - timedelta(days=14) <= org.plant.hiring_wave <= org.last_day
    assert all(r.sells_from > org.last_day for r in wave)
    assert all(r.monthly_cost > 0 for r in org.reps)
    assert all(r.hired_at == org.plant.slow_cohort for r in org.reps if r.cohort == "slow")
    assert all(r.hired_at == org.plant.fast_cohort for r in org.reps if r.cohort == "fast")
    assert all(org.rep(rep_id).cohort == "veteran" for rep_id in org.plant.gaps)
    assert sorted(org.plant.gaps.values()) == ["connect_rate", "meeting_rate"]
    talkers = (org.plant.monologuer, org.plant.labeller)
    assert all(org.rep(rep_id).cohort == "veteran" for rep_id in talkers)
    assert len({*talkers, *org.plant.gaps}) == 4
    assert set(org.styles) == {r.rep_id for r in org.reps}


def test_coachability_correlates_most_with_attainment(small_org: SmallOrg) -> None:
    org, events = small_org
    correlations = reference.correlations(org, events, last_days(org, 90))
    best = max(correlations, key=lambda t: correlations[t].r or -1.0)
    assert best == org.plant.strongest_trait == "coachability"
    p_value = correlations["coachability"].p_value
    assert p_value is not None
    assert p_value < 0.05


def test_the_planted_gaps_are_those_reps_coaching_focus(small_org: SmallOrg) -> None:
    org, events = small_org
    coaching = reference.coaching(org, events, last_days(org, 90))
    for rep_id, metric in org.plant.gaps.items():
        assert metric in coaching[rep_id].focus, (rep_id, coaching[rep_id].focus)
        standing = coaching[rep_id].metrics[metric]
        assert standing.z is not None
        assert standing.z < -2
        assert standing.percentile == 0.0  # the lowest of the team


CONVERSATION_GAPS = ("rep_talk_share", "talk_ratio", "longest_monologue_s")


def assert_the_talkers_stand_out(org: Organisation, coaching: dict[str, RepCoaching]) -> None:
    """The monologuer's first focus is his longest monologue, then his talk share; the labeller labels
    most, wins more than the peers, and nothing about how the labeller talks needs coaching."""
    talker = coaching[org.plant.monologuer]
    assert talker.focus[0] == "longest_monologue_s", talker.focus
    assert talker.focus[1] in CONVERSATION_GAPS, talker.focus
    for metric in ("longest_monologue_s", "rep_talk_share", "talk_ratio"):
        standing = talker.metrics[metric]
        assert standing.z is not None
        assert standing.z > 3  # far above the peers: the gap
        assert standing.percentile == 100.0
    assert talker.metrics["label_per_call"].value == 0.0
    labeller = coaching[org.plant.labeller]
    labels = labeller.metrics["label_per_call"]
    assert labels.percentile == 100.0  # the most labels per call of the team
    assert labels.z is not None
    assert labels.z > 3
    asks = labeller.metrics["calibrated_question_per_call"].percentile
    assert asks is not None
    assert asks >= 90
    wins = labeller.metrics["win_rate"]
    assert wins.percentile is not None
    assert wins.percentile >= 90
    assert not set(labeller.focus) & {*CONVERSATION_METRICS, "talk_ratio"}, labeller.focus


def test_the_monologuer_and_the_labeller_stand_out(small_org: SmallOrg) -> None:
    org, events = small_org
    coaching = reference.coaching(org, events, last_days(org, 90))
    assert_the_talkers_stand_out(org, coaching)
    # The transcripts carry the tactics the analysis counts (test_transcripts.py): here, the styles.
    talk = reference.conversations(events, last_days(org, 90))
    assert talk[org.plant.monologuer]["summary_per_call"] == 0
    assert (talk[org.plant.labeller]["summary_per_call"] or 0) > 0.5
    assert talk[org.plant.labeller]["thats_right_per_call"] == talk[org.plant.labeller]["summary_per_call"]
    assert all(talk[r.rep_id]["calls_analysed"] for r in org.reps if r.cohort == "veteran")


def test_the_labeller_wins_more_than_skill_alone_would(small_org: SmallOrg) -> None:
    org, events = small_org
    labeller = org.rep(org.plant.labeller)
    veterans = [r for r in org.reps if r.cohort == "veteran"]
    # Coachable (the tactics are learned), and the planted boost on top of the skill traits give.
    coachability = sorted(r.traits["coachability"] for r in veterans)
    assert labeller.traits["coachability"] >= statistics.median(coachability)
    assert labeller.skill == max(r.skill for r in veterans)
    counts = reference.rep_counts(events, whole(org))
    rates = {
        rep: c.get("deals_won", 0) / (c.get("deals_won", 0) + c.get("deals_lost", 0))
        for rep, c in counts.items()
        if org.rep(rep).cohort == "veteran" and c.get("deals_won", 0) + c.get("deals_lost", 0)
    }
    assert rates[labeller.rep_id] > statistics.quantiles(rates.values(), n=4)[2]


def test_the_fast_cohort_ramps_faster(small_org: SmallOrg) -> None:
    org, events = small_org
    ramp = reference.cohort_ramp(org, events)
    slow = ramp[f"{org.plant.slow_cohort:%Y-%m}"]
    fast = ramp[f"{org.plant.fast_cohort:%Y-%m}"]
    assert (fast.months[1].median or 0) > (slow.months[1].median or 0) > 0


def test_certification_by_month_3_is_visible_and_goes_with_a_faster_ramp(
    small_org: SmallOrg,
) -> None:
    org, events = small_org
    attempts = [
        Attempt(e.rep_id, e.module, bool(e.passed), e.occurred_at.date(), e.score)
        for e in events
        if e.type == "training.certification" and e.rep_id and e.module
    ]
    hired = {r.rep_id: r.hired_at for r in org.reps}
    planned = {r.rep_id for r in org.reps if r.certified}
    assert planned
    assert certified_reps(attempts, hired) == planned
    for cohort in ("slow", "fast"):
        members = [r for r in org.reps if r.cohort == cohort]
        fastest_uncertified = min(r.ramp_tau_months for r in members if not r.certified)
        assert all(r.ramp_tau_months < fastest_uncertified for r in members if r.certified)

    # In the events: the revenue of each new hire's first two months since hire.
    early: dict[str, float] = dict.fromkeys((r.rep_id for r in org.reps if r.certified is not None), 0.0)
    for e in events:
        if e.type == "deal.won" and e.rep_id in early:
            k = month_index(hired[e.rep_id], e.occurred_at.date())
            if k is not None and k <= 1:
                early[e.rep_id] += e.amount or 0
    certified = [v for rep_id, v in early.items() if rep_id in planned]
    others = [v for rep_id, v in early.items() if rep_id not in planned]
    assert statistics.median(certified) > statistics.median(others)


def test_channels_rank_by_lead_quality_and_speed_as_planned(
    small_org: SmallOrg,
) -> None:
    org, events = small_org
    quality = reference.channel_quality(events)
    by_quality = tuple(sorted(quality, key=lambda c: -quality[c]["lead_to_won"]))
    by_speed = tuple(sorted(quality, key=lambda c: quality[c]["speed_to_lead_median_s"]))
    assert by_quality == org.plant.channels_by_quality
    assert by_speed == org.plant.channels_by_speed
    assert {c for c, _ in org.spend} == set(quality)


# Seeds 8 and 9 are soak-size: `make soak` runs them.
@pytest.mark.parametrize(
    "seed", [7, pytest.param(8, marks=pytest.mark.soak), pytest.param(9, marks=pytest.mark.soak)]
)
def test_the_default_size_shows_the_structure_for_other_seeds_too(seed: int) -> None:
    org = model.build(reps=50, days=180, seed=seed, end=END)
    events = simulate.events(org)
    window = last_days(org, 90)
    correlations = reference.correlations(org, events, window)
    assert max(correlations, key=lambda t: correlations[t].r or -1.0) == "coachability"
    coaching = reference.coaching(org, events, window)
    assert all(metric in coaching[rep_id].focus for rep_id, metric in org.plant.gaps.items())
    ramp = reference.cohort_ramp(org, events)
    fast, slow = ramp[f"{org.plant.fast_cohort:%Y-%m}"], ramp[f"{org.plant.slow_cohort:%Y-%m}"]
    assert (fast.months[1].median or 0) > (slow.months[1].median or 0)
    quality = reference.channel_quality(events)
    assert tuple(sorted(quality, key=lambda c: -quality[c]["lead_to_won"])) == org.plant.channels_by_quality
    assert_the_talkers_stand_out(org, coaching)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="reps must be"):
        model.build(reps=5, days=180, seed=1, end=END)
    with pytest.raises(ValueError, match="days must be"):
        model.build(reps=20, days=30, seed=1, end=END)
    with pytest.raises(ValueError, match="timezone-aware"):
        model.build(reps=20, days=120, seed=1, end=END.replace(tzinfo=None))
