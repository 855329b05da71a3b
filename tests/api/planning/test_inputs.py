"""Where each input of a capacity plan comes from, and the refusals when the ramp is not measured."""

from __future__ import annotations

from datetime import date

import pytest

from services.api.kit.attrition import Attrition, RepTenure
from services.api.kit.ramp import measure_ramp
from services.api.planning import inputs
from services.api.planning.capacity import TooLittleHistory

STEADY = dict.fromkeys(range(6, 12), 1000.0)


def ramp_of(reps: int, early: dict[int, float]) -> inputs.Ramp:
    return inputs.checked_ramp(measure_ramp([{**early, **STEADY} for _ in range(reps)]))


def test_a_ramp_from_ten_reps_with_every_month_measured() -> None:
    ramp = ramp_of(10, {0: 100.0, 1: 500.0, 2: 900.0})
    assert (ramp.months, ramp.steady_state, ramp.reps) == (2, 1_000.0, 10)
    assert ramp.shares == pytest.approx((0.1, 0.5))


@pytest.mark.parametrize(
    ("reps", "monthly", "reason"),
    [
        (9, [{0: 100.0, 1: 900.0, **STEADY}], "is measured from 9 reps"),
        (10, [{0: 100.0, 1: 300.0}], "no steady state"),
        (10, [{0: 100.0, 6: 0.0}], "a steady state of 0"),
        (10, [{0: 100.0, 2: 900.0, **STEADY}], "no measured rep in tenure month 1"),
    ],
)
def test_a_ramp_that_cannot_carry_a_plan_is_refused(
    reps: int, monthly: list[dict[int, float]], reason: str
) -> None:
    with pytest.raises(TooLittleHistory) as err:
        inputs.checked_ramp(measure_ramp(monthly * reps))
    assert err.value.field == "ramp"
    assert reason in err.value.reason


def test_failure_rate_setting_then_measured_then_default() -> None:
    measured = Attrition(0.3, 3, 10, None, 0, 0.0, 0)
    unmeasured = Attrition(None, 1, 4, None, 0, 0.0, 0)
    assert inputs.failure_rate(0.5, measured).model_dump(include={"value", "source"}) == {
        "value": 0.5,
        "source": "settings",
    }
    assert (inputs.failure_rate(None, measured).value, inputs.failure_rate(None, measured).source) == (
        0.3,
        "measured",
    )
    assert (inputs.failure_rate(None, unmeasured).value, inputs.failure_rate(None, unmeasured).source) == (
        0.35,
        "default",
    )
    assert inputs.monthly_attrition(measured).model_dump(include={"value", "source"}) == {
        "value": 0.0,
        "source": "default",
    }


def test_quota_of_active_reps_above_zero_else_the_steady_state() -> None:
    ramp = ramp_of(10, {0: 500.0, 1: 900.0})
    reps = [
        RepTenure("a", date(2025, 1, 1), None, True, 8_000.0),
        RepTenure("b", date(2025, 1, 1), None, True, 12_000.0),
        RepTenure("c", date(2025, 1, 1), None, True, 0.0),
        RepTenure("d", date(2025, 1, 1), date(2025, 6, 1), False, 90_000.0),
    ]
    assert inputs.quota(reps, ramp).value == 10_000.0
    fallback = inputs.quota(reps[2:], ramp)
    assert (fallback.value, fallback.source) == (1_000.0, "default")
    attainment = measure_ramp([])
    assert inputs.median_attainment(attainment, fallback).value == 1.0
