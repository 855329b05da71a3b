"""One response contract per route: the hot answers written straight to JSON (rep metrics, a rep's
coaching, the team's coaching) are byte for byte what their documented response models write of
the same results, whatever the values: zeros, nulls, ties, large and fractional amounts.

(The other routes return their response model and FastAPI serialises it; the demand channel report
is written by `ChannelsOut` itself before it is cached.)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.api.coaching.answers import Group, Ramp, rep_coaching_body, team_coaching_body
from services.api.coaching.queries import GROUP_COLUMNS, GroupSums
from services.api.coaching.schemas import (
    PriorityOut,
    RepCoachingOut,
    StandingOut,
    TeamCoachingOut,
    TeamRepOut,
)
from services.api.coaching.service import COACHING_METRICS, standing_of
from services.api.coaching.tenure import coach_ramping
from services.api.kit.reads import json_answer, model_json
from services.api.kit.sums import METRIC_COLUMNS, METRICS, CounterSums, window_metrics
from services.api.reps.schemas import Metrics, RepMetricsOut
from services.api.reps.service import rep_metrics_body

EXAMPLES = settings(max_examples=200, deadline=None)
GROUP_EXAMPLES = settings(max_examples=60, deadline=None)  # a group is a dozen reps' sums

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 1, 1))
as_of = st.none() | st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 (hypothesis takes naive bounds)
    max_value=datetime(2099, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
counts = st.sampled_from([0, 0, 1, 2, 7, 20, 333]) | st.integers(0, 10**12)
# Amounts as the read pool returns them: sums rounded to doubles.
amounts = st.sampled_from([0.0, 0.1, 12.345, 80000.0, 1e15]) | st.floats(0, 1e15, allow_nan=False)
quotas = st.none() | st.decimals(0, 10**15, places=4, allow_nan=False, allow_infinity=False)
NUMERIC = {"talk_time_s", "rep_talk_s", "buyer_talk_s", "revenue_won"}


def test_the_metric_names_are_the_models_fields() -> None:
    assert tuple(Metrics.model_fields) == METRICS


@st.composite
def counter_sums(draw: st.DrawFn) -> CounterSums:
    start = draw(days)
    end = start + timedelta(days=draw(st.integers(0, 1095)))
    sums = {c: draw(amounts if c in NUMERIC else counts) for c in METRIC_COLUMNS}
    return CounterSums(start, end, draw(as_of), draw(quotas), sums)


@EXAMPLES
@given(found=counter_sums(), rep_id=st.text(min_size=1, max_size=20))
def test_rep_metrics_are_written_as_rep_metrics_out(found: CounterSums, rep_id: str) -> None:
    model = RepMetricsOut(
        rep_id=rep_id,
        from_=found.start,
        to=found.end,
        as_of=found.as_of,
        metrics=Metrics.model_validate(window_metrics(found)),
    )
    assert json_answer(rep_metrics_body(rep_id, found)) == model_json(model)


@st.composite
def groups(draw: st.DrawFn) -> Group:
    rows: list[dict[str, Any]] = []
    start = draw(days)
    for i in range(draw(st.integers(1, 12))):
        sums = {c: draw(amounts if c in NUMERIC else counts) for c in GROUP_COLUMNS}
        team = draw(st.sampled_from(["east", "west", None]))
        hired = draw(st.none() | st.integers(-400, 40).map(lambda d: start + timedelta(days=d)))
        employed = draw(st.sampled_from([None, 30, 30, 0, 1, 17]))
        rows.append({"rep_id": f"r{i}", "team": team, "hired_at": hired, "employed_days": employed, **sums})
    return Group.of(GroupSums("1:2:", start, start + timedelta(days=29), draw(as_of), rows))


def window(group: Group) -> dict[str, Any]:
    return {"from_": group.sums.start, "to": group.sums.end, "as_of": group.sums.as_of}


def ramps(group: Group, scope: Any, min_sample: int, months: int | None) -> Ramp:
    """No ramp (months None), or the group's reps in their first `months` months of tenure against
    the group itself as every tenure month's pool: tenure rows of their own in the answer."""
    if months is None:
        return Ramp(None)
    rows = {i: n for i, n in group.months.items() if n is not None and n < months}
    pools = dict.fromkeys(set(rows.values()), group.prorated)
    return Ramp(
        months, coach_ramping(group.prorated, rows, pools, min_sample=min_sample, by_team=scope == "team")
    )


@GROUP_EXAMPLES
@given(
    group=groups(),
    scope=st.sampled_from(["tenant", "team"]),
    min_sample=st.sampled_from([0, 1, 20, 10**6]),
    months=st.sampled_from([None, 0, 3, 12]),
)
def test_rep_coaching_is_written_as_rep_coaching_out(
    group: Group, scope: Any, min_sample: int, months: int | None
) -> None:
    ramp = ramps(group, scope, min_sample, months)
    coached = group.coached(min_sample, scope == "team")
    for rep_id, i in group.index.items():
        priorities, peer_group = ramp.priorities(group, i, scope, min_sample)
        model = RepCoachingOut(
            rep_id=rep_id,
            team=group.table.teams[i],
            scope=scope,
            peer_group=peer_group,
            min_sample=min_sample,
            ramp_months=months,
            **window(group),
            metrics={
                name: StandingOut.model_validate(
                    standing_of(group.table, coached, i, name), from_attributes=True
                )
                for name in COACHING_METRICS
            },
            focus=list(coached.focus[i]),
            priorities=[PriorityOut.model_validate(p, from_attributes=True) for p in priorities],
        )
        body = rep_coaching_body(group, rep_id, scope=scope, min_sample=min_sample, ramp=ramp)
        assert json_answer(body) == model_json(model)


@GROUP_EXAMPLES
@given(
    group=groups(),
    scope=st.sampled_from(["tenant", "team"]),
    team=st.sampled_from([None, "east", "west"]),
    min_sample=st.sampled_from([0, 1, 20]),
    months=st.sampled_from([None, 0, 3, 12]),
)
def test_team_coaching_is_written_as_team_coaching_out(
    group: Group, scope: Any, team: str | None, min_sample: int, months: int | None
) -> None:
    ramp = ramps(group, scope, min_sample, months)
    reps = []
    coached = group.coached(min_sample, scope == "team")
    for i, (rep_id, rep_team) in enumerate(zip(group.table.rep_ids, group.table.teams, strict=True)):
        if team is None or rep_team == team:
            found, peer_group = ramp.priorities(group, i, scope, min_sample)
            priorities = [PriorityOut.model_validate(p, from_attributes=True) for p in found]
            reps.append(
                TeamRepOut(
                    rep_id=rep_id,
                    team=rep_team,
                    peer_group=peer_group,
                    focus=list(coached.focus[i]),
                    priorities=priorities,
                )
            )
    model = TeamCoachingOut(
        scope=scope,
        peer_group=scope,
        team=team,
        min_sample=min_sample,
        ramp_months=months,
        **window(group),
        reps=reps,
    )
    body = team_coaching_body(group, scope=scope, team=team, min_sample=min_sample, ramp=ramp)
    assert json_answer(body) == model_json(model)


def test_a_quota_read_as_decimal_counts_as_its_float() -> None:
    found = CounterSums(date(2026, 10, 1), date(2026, 10, 30), None, Decimal("0.1000"), {"revenue_won": 1.0})
    assert window_metrics(found)["quota_attainment"] == 1.0 / (0.1 * 30 / (365.25 / 12))
