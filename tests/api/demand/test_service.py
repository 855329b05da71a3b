"""Channel report and spend (SPEC 5.5). Speed to lead and first touch are folded by the aggregator:
tests/aggregator/folds/test_lead_speed.py."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.api.demand.queries import ChannelCounts
from services.api.demand.schemas import ChannelsOut, SpendIn, parse_month
from services.api.demand.service import channel_stats, channels_report, spend_in_window

ORGANIC = ChannelCounts(
    leads=40, mqls=12, sqls=6, deals_created=5, deals_won=2, revenue_won=Decimal("24000.00")
)


def test_channel_stats_by_hand() -> None:
    s = channel_stats(ORGANIC, spend=Decimal("3000"), speeds=[300, 540, 900, 60, 1200])
    assert (s.leads, s.mqls, s.sqls, s.deals_created, s.deals_won) == (40, 12, 6, 5, 2)
    assert s.revenue_won == 24000.0
    assert s.lead_to_deal == 0.125
    assert s.lead_to_won == 0.05
    assert s.revenue_per_lead == 600.0
    assert s.speed_to_lead_median_s == 540.0  # 60 300 540 900 1200
    assert s.spend == 3000.0
    assert s.cac == 1500.0
    assert channel_stats(ORGANIC, speeds=[60, 300]).speed_to_lead_median_s == 180.0


def test_rates_over_zero_are_null() -> None:
    s = channel_stats(ChannelCounts(deals_won=0), spend=500)
    assert s.lead_to_deal is None
    assert s.lead_to_won is None
    assert s.revenue_per_lead is None
    assert s.speed_to_lead_median_s is None
    assert s.cac is None  # spend but nothing won
    assert s.spend == 500.0
    assert channel_stats(ORGANIC).cac is None  # won deals but no spend
    assert channel_stats(ORGANIC, spend=0).cac == 0.0  # free channel


def test_channels_report_lists_every_channel_seen() -> None:
    report = channels_report(
        {"organic_search": ORGANIC, "referral": ChannelCounts(leads=4, deals_won=1, revenue_won=9000)},
        spend={"paid_search": 1200.0, "referral": 100.0},
        speeds={"organic_search": [120.0], "events": [30.0]},
    )
    assert list(report) == ["events", "organic_search", "paid_search", "referral"]
    assert report["paid_search"].leads == 0
    assert report["paid_search"].spend == 1200.0
    assert report["paid_search"].cac is None
    assert report["referral"].cac == 100.0
    assert report["events"].speed_to_lead_median_s == 30.0
    assert report["organic_search"].speed_to_lead_median_s == 120.0
    body = ChannelsOut(from_=date(2026, 10, 1), to=date(2026, 10, 30), as_of=None, channels=report)
    dumped = body.model_dump(mode="json", by_alias=True)
    assert dumped["from"] == "2026-10-01"
    assert dumped["channels"]["referral"]["lead_to_won"] == 0.25


def test_spend_is_prorated_by_day() -> None:
    monthly: dict[str, Decimal | float] = {"2026-10": Decimal("3100"), "2026-11": 3000.0, "2027-01": 999.0}
    # 17-31 Oct is 15 of 31 days, 1-10 Nov 10 of 30
    assert spend_in_window(monthly, date(2026, 10, 17), date(2026, 11, 10)) == pytest.approx(2500.0)
    assert spend_in_window(monthly, date(2026, 10, 1), date(2026, 11, 30)) == pytest.approx(6100.0)
    assert spend_in_window(monthly, date(2026, 12, 1), date(2026, 12, 31)) is None
    assert spend_in_window({"2026-12": 0}, date(2026, 12, 1), date(2026, 12, 1)) == 0.0


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "26-01", "2026-01-01", "soon"])
def test_bad_months_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)
    with pytest.raises(ValidationError):
        SpendIn.model_validate({"channel": "paid_search", "month": text, "amount": "10"})


def test_spend_body() -> None:
    body = SpendIn.model_validate({"channel": "paid_search", "month": "2026-10", "amount": "12500.00"})
    assert body.amount == Decimal("12500.00")
    assert parse_month(body.month) == date(2026, 10, 1)
    for bad in (
        {"channel": "tv", "month": "2026-10", "amount": 1},
        {"channel": "events", "month": "2026-10"},
    ):
        with pytest.raises(ValidationError):
            SpendIn.model_validate(bad)
    with pytest.raises(ValidationError):
        SpendIn.model_validate({"channel": "events", "month": "2026-10", "amount": -1})
