"""SPEC 5.1 formulas from counter sums, without I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.api.kit.sums import metrics_from_sums, ratio

SUMS: dict[str, int | Decimal] = {
    "dials": 40,
    "connects": 10,
    "talk_time_s": Decimal("1500.500"),
    "talk_calls": 5,
    "rep_talk_s": Decimal("200.000"),
    "buyer_talk_s": Decimal("300.000"),
    "emails_sent": 30,
    "email_replies": 3,
    "emails_opened": 12,
    "emails_clicked": 6,
    "emails_bounced": 2,
    "meetings_booked": 4,
    "meetings_held": 3,
    "deals_created": 3,
    "deals_won": 2,
    "deals_lost": 6,
    "revenue_won": Decimal("4500.2500"),
}


HAND_COMPUTED = {
    "dials": 40,
    "connects": 10,
    "connect_rate": 0.25,
    "talk_time_s": 1500.5,
    "talk_ratio": 0.4,
    "emails_sent": 30,
    "email_replies": 3,
    "reply_rate": pytest.approx(0.1),
    # Opens, clicks and bounces each over the 30 emails sent.
    "emails_opened": 12,
    "emails_clicked": 6,
    "emails_bounced": 2,
    "open_rate": 0.4,
    "click_rate": 0.2,
    "bounce_rate": pytest.approx(1 / 15),
    "meetings_booked": 4,
    "meetings_held": 3,
    "meeting_rate": 0.4,
    "show_rate": 0.75,
    "deals_created": 3,
    "deals_won": 2,
    "deals_lost": 6,
    "win_rate": 0.25,
    "revenue_won": 4500.25,
    "avg_deal_size": 2250.125,
    # 30 days are 30 / (365.25 / 12) = 0.98563 months of a 10 000 quota.
    "quota_attainment": pytest.approx(4500.25 / 9856.262833675565),
}


def test_every_metric_against_hand_computed_values() -> None:
    got = metrics_from_sums(SUMS, quota_monthly=Decimal(10000), days=30)
    assert got == HAND_COMPUTED
    assert isinstance(got["dials"], int)
    assert isinstance(got["revenue_won"], float)


def test_zero_denominators_give_null_never_zero() -> None:
    got = metrics_from_sums({}, quota_monthly=None, days=30)
    rates = {"connect_rate", "talk_ratio", "reply_rate", "meeting_rate", "show_rate", "win_rate"}
    rates |= {"open_rate", "click_rate", "bounce_rate"}
    for name in (*rates, "avg_deal_size", "quota_attainment"):
        assert got[name] is None, name
    for name in set(got) - rates - {"avg_deal_size", "quota_attainment"}:
        assert got[name] == 0, name


def test_each_rate_is_null_only_when_its_own_denominator_is_zero() -> None:
    got = metrics_from_sums({"dials": 5, "meetings_booked": 2, "deals_lost": 1}, quota_monthly=100, days=30)
    assert got["connect_rate"] == 0.0
    assert got["meeting_rate"] is None  # no connects
    assert got["show_rate"] == 0.0
    assert got["win_rate"] == 0.0
    assert got["avg_deal_size"] is None
    assert got["quota_attainment"] == 0.0
    assert got["reply_rate"] is None


def test_email_engagement_is_over_emails_sent_and_null_without_any() -> None:
    # Engagement of emails sent before the window still counts, but without a send in the window
    # there is nothing to divide by: the counts show, the rates are null.
    engaged = {"emails_opened": 3, "emails_clicked": 1, "emails_bounced": 1}
    got = metrics_from_sums(engaged, quota_monthly=None, days=30)
    assert {k: got[k] for k in engaged} == engaged
    assert (got["open_rate"], got["click_rate"], got["bounce_rate"]) == (None, None, None)
    # Opens can outnumber sends (an email opened twice counts twice): the rate is then above 1.
    got = metrics_from_sums({**engaged, "emails_opened": 9, "emails_sent": 4}, quota_monthly=None, days=30)
    assert (got["open_rate"], got["click_rate"], got["bounce_rate"]) == (9 / 4, 1 / 4, 1 / 4)


def test_talk_ratio_uses_both_sides_of_the_conversation() -> None:
    assert (
        metrics_from_sums({"rep_talk_s": 90, "buyer_talk_s": 0}, quota_monthly=None, days=1)["talk_ratio"]
        == 1.0
    )
    assert (
        metrics_from_sums({"rep_talk_s": 30, "buyer_talk_s": 90}, quota_monthly=None, days=1)["talk_ratio"]
        == 0.25
    )


def test_quota_attainment_scales_with_the_window_and_needs_a_quota() -> None:
    sums = {"revenue_won": 36525}
    # 365 days are 365 / 30.4375 = 11.99 months.
    assert metrics_from_sums(sums, quota_monthly=1000, days=365)["quota_attainment"] == pytest.approx(
        36525 / (1000 * 365 / 30.4375)
    )
    assert metrics_from_sums(sums, quota_monthly=None, days=30)["quota_attainment"] is None
    assert metrics_from_sums(sums, quota_monthly=0, days=30)["quota_attainment"] is None


def test_ratio() -> None:
    assert ratio(1, 4) == 0.25
    assert ratio(Decimal(3), Decimal(2)) == 1.5
    assert ratio(5, 0) is None
    assert ratio(0, 0) is None
