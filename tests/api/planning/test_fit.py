"""The stage-of-fit rules: each light green, red or unknown from the figures, and premature scaling."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.api.kit.economics import Figures
from services.api.planning.fit import (
    CohortRamp,
    Light,
    cohort_ramps,
    go_to_market,
    headcount_growth,
    premature_scaling,
    product_market,
    scale,
)

HEALTHY = Figures(
    mrr_start=100_000.0,
    mrr_end=120_000.0,
    new_mrr=20_000.0,
    reactivation_mrr=0.0,
    expansion_mrr=10_000.0,
    contraction_mrr=2_000.0,
    churned_mrr=8_000.0,
    customers_start=40,
    customers_end=44,
    customers_new=8,
    customers_reactivated=0,
    customers_churned=4,
    logo_retention=0.9,
    net_revenue_retention=1.02,
    gross_revenue_retention=0.9,
    arpa=2_727.0,
    monthly_churn=0.0083,
    ltv=262_000.0,
    marketing_spend=100_000.0,
    sales_cost=80_000.0,
    cac=22_500.0,
    cac_payback_months=10.3,
    ltv_to_cac=11.6,
)


def test_product_market_annualises_the_window() -> None:
    year = product_market(HEALTHY, days=365)
    assert year.light == "green"
    assert year.figures["logo_retention"] == pytest.approx(0.9)
    # The same retention over half a year is 0.81 a year: red.
    half = product_market(HEALTHY, days=365 // 2 + 1)
    assert half.figures["logo_retention"] == pytest.approx(0.9 ** (365 / 183))
    assert half.light == "red"
    assert "logo retention 0.81 a year < 0.90" in half.reason
    shrinking = product_market(replace(HEALTHY, net_revenue_retention=0.97), days=365)
    assert shrinking.light == "red"
    assert "net revenue retention 0.97" in shrinking.reason


def test_product_market_unknown_with_few_customers() -> None:
    few = product_market(replace(HEALTHY, customers_start=9, logo_retention=0.5), days=365)
    assert few.light == "unknown"
    assert "9 customers" in few.reason
    none = product_market(replace(HEALTHY, logo_retention=None), days=365)
    assert none.light == "unknown"


def test_go_to_market() -> None:
    assert go_to_market(HEALTHY).light == "green"
    cheap_but_slow = go_to_market(replace(HEALTHY, cac_payback_months=14.0))
    assert cheap_but_slow.light == "red"
    assert cheap_but_slow.reason == "CAC payback 14.0 months > 12"
    assert go_to_market(replace(HEALTHY, ltv_to_cac=2.9)).light == "red"
    # No gross margin set: neither ratio is known.
    unset = go_to_market(replace(HEALTHY, ltv=None, ltv_to_cac=None, cac_payback_months=None))
    assert unset.light == "unknown"
    # A known failure is red even when the other figure is unknown.
    assert (
        go_to_market(
            replace(HEALTHY, ltv_to_cac=None, ltv=None, monthly_churn=None, cac_payback_months=20.0)
        ).light
        == "red"
    )
    # No churn: the lifetime is unbounded, so LTV:CAC passes on a known CAC and margin.
    no_churn = go_to_market(replace(HEALTHY, monthly_churn=0.0, ltv=None, ltv_to_cac=None))
    assert no_churn.light == "green"
    assert go_to_market(replace(HEALTHY, customers_start=3)).light == "unknown"


def test_scale() -> None:
    cohorts = [CohortRamp("2025-Q3", 4, 3), CohortRamp("2025-Q4", 5, 4)]
    green = scale(0.3, "measured", cohorts)
    assert green.light == "green"
    assert green.figures["ramp_months_last"] == 4
    assert scale(0.45, "measured", cohorts).light == "red"
    slower = scale(0.3, "measured", [CohortRamp("2025-Q3", 4, 3), CohortRamp("2025-Q4", 5, 5)])
    assert slower.light == "red"
    assert "longer" in slower.reason
    assert scale(None, "measured", cohorts).light == "unknown"
    assert scale(0.3, "settings", cohorts[:1]).light == "unknown"
    assert scale(0.5, "measured", []).light == "red"  # a known failure is enough


def test_cohort_ramps_against_the_tenant_steady_state() -> None:
    hired = {f"a{i}": date(2025, 1, 10 + i) for i in range(3)} | {
        f"b{i}": date(2025, 4, 2 + i) for i in range(3)
    }
    hired["c0"] = date(2025, 7, 1)  # a cohort of one: too small to judge
    by_rep = {f"a{i}": {0: 100.0, 1: 500.0, 2: 850.0} for i in range(3)}
    by_rep |= {f"b{i}": {0: 100.0, 1: 300.0, 2: 700.0, 3: 800.0} for i in range(3)}
    by_rep["c0"] = {0: 900.0}
    by_rep["no-hire-date"] = {0: 900.0}
    assert cohort_ramps(by_rep, hired, 1_000.0) == [CohortRamp("2025-Q1", 3, 2), CohortRamp("2025-Q2", 3, 3)]
    assert cohort_ramps(by_rep, hired, None) == []


def test_premature_scaling() -> None:
    red, green, unknown = Light("red", ""), Light("green", ""), Light("unknown", "")
    assert headcount_growth(15, 11) == pytest.approx(4 / 11)
    assert headcount_growth(3, 0) is None
    assert premature_scaling(0.3, red, green) is True
    assert premature_scaling(0.3, green, red) is True
    assert premature_scaling(0.25, red, red) is False  # grew exactly 25 %: not more
    assert premature_scaling(0.5, green, green) is False
    assert premature_scaling(0.5, unknown, green) is None
    assert premature_scaling(None, red, green) is None
    assert premature_scaling(None, green, green) is False


def test_a_short_window_of_growth_does_not_overflow() -> None:
    days = product_market(replace(HEALTHY, net_revenue_retention=40.0, logo_retention=1.0), days=1)
    assert days.light == "green"
    assert days.figures["net_revenue_retention"] == float("inf")
