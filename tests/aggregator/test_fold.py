"""The fold against hand-computed expectations: counter semantics, timezone days, DST, exact money."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from services.aggregator.fold import Deltas, distinct, fold
from services.core.events import SCHEMA_HEADER
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS
from services.core.wire import Event, decode

_ids = itertools.count()
TENANT_TZ = {"acme": "UTC", "globex": "Europe/Berlin"}
REP_TZ = {("acme", "berlin"): "Europe/Berlin", ("acme", "nyc"): "America/New_York"}


def zone_of(tenant: str, rep_id: str | None) -> ZoneInfo:
    return ZoneInfo(REP_TZ.get((tenant, rep_id or ""), TENANT_TZ[tenant]))


def ev(type: str, at: str = "2026-11-02T12:00:00Z", **fields: Any) -> Event:
    body = {
        "event_id": fields.pop("event_id", f"e{next(_ids)}"),
        "type": type,
        "occurred_at": at,
        "tenant": fields.pop("tenant", "acme"),
        "source": "api",
        "received_at": "2026-11-02T12:00:01Z",
        "rep_id": fields.pop("rep_id", "r1"),
        **fields,
    }
    decoded = decode(orjson.dumps({k: v for k, v in body.items() if v is not None}), [SCHEMA_HEADER])
    assert isinstance(decoded, Event), decoded
    return decoded


def rep(
    deltas: Deltas, rep_id: str = "r1", day: date = date(2026, 11, 2), tenant: str = "acme"
) -> dict[str, Any]:
    rows = {(r[0], r[1], r[2]): dict(zip(REP_COUNTERS, r[3:], strict=True)) for r in deltas.rep_rows()}
    return rows[(tenant, rep_id, day)]


def nonzero(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v != 0}


def channels(deltas: Deltas) -> dict[tuple[str, str, date], dict[str, Any]]:
    return {
        (r[0], r[1], r[2]): nonzero(dict(zip(CHANNEL_COUNTERS, r[3:], strict=True)))
        for r in deltas.channel_rows()
    }


def test_calls_count_dials_connects_talk_time_and_talk_ratio_inputs() -> None:
    d = fold(
        [
            ev("call.completed", direction="outbound", outcome="connected", duration_s=125.5,
               rep_talk_s=50, buyer_talk_s=70.25),
            ev("call.completed", direction="outbound", outcome="no_answer", duration_s=30),
            ev("call.completed", direction="inbound", outcome="connected", duration_s=60, rep_talk_s=10),
            ev("call.completed", direction="outbound", outcome="voicemail", rep_talk_s=5, buyer_talk_s=0),
            ev("call.completed"),
        ],
        zone_of,
    )  # fmt: skip
    assert nonzero(rep(d)) == {
        "events": 5,
        "calls": 5,
        "dials": 3,
        "connects": 1,
        "talk_time_s": Decimal("185.5"),  # connected calls only, either direction
        "talk_calls": 2,  # only calls with both talk times
        "rep_talk_s": Decimal("55"),
        "buyer_talk_s": Decimal("70.25"),
    }


@pytest.mark.parametrize(
    ("type", "counter"),
    [
        ("email.sent", "emails_sent"),
        ("email.opened", "emails_opened"),
        ("email.clicked", "emails_clicked"),
        ("email.replied", "email_replies"),
        ("email.bounced", "emails_bounced"),
        ("meeting.booked", "meetings_booked"),
        ("meeting.held", "meetings_held"),
        ("meeting.no_show", "meetings_no_show"),
        ("lead.created", "leads_created"),
        ("deal.created", "deals_created"),
        ("deal.stage_changed", "deal_stage_changes"),
        ("deal.lost", "deals_lost"),
    ],
)
def test_one_counter_types(type: str, counter: str) -> None:
    d = fold([ev(type), ev(type, stage="proposal")], zone_of)
    assert nonzero(rep(d)) == {"events": 2, counter: 2}


def test_leads_qualified_by_stage_and_certifications() -> None:
    d = fold(
        [
            ev("lead.qualified", stage="mql"),
            ev("lead.qualified", stage="sql"),
            ev("lead.qualified", stage="sql"),
            ev("training.certification", module="demo", score=90, passed=True),
            ev("training.certification", module="demo", score=40, passed=False),
        ],
        zone_of,
    )
    assert nonzero(rep(d)) == {
        "events": 5,
        "leads_mql": 1,
        "leads_sql": 2,
        "certifications": 2,
        "certifications_passed": 1,
    }


def test_revenue_is_decimal_exact_and_null_amount_counts_as_zero() -> None:
    amounts = ["0.1000", "0.2000", "999999999999.9999", None, "0.0001"]
    d = fold([ev("deal.won", amount=a, channel="referral") for a in amounts], zone_of)
    row = rep(d)
    assert row["deals_won"] == 5
    assert row["revenue_won"] == Decimal("1000000000000.3000")
    assert isinstance(row["revenue_won"], Decimal)
    assert channels(d)[("acme", "referral", date(2026, 11, 2))]["revenue_won"] == Decimal("1000000000000.3")


def test_seconds_are_summed_exactly_to_the_millisecond() -> None:
    calls = [ev("call.completed", outcome="connected", duration_s=0.1) for _ in range(3)]
    assert rep(fold(calls, zone_of))["talk_time_s"] == Decimal("0.3")  # not 0.30000000000000004


def test_rep_day_is_the_reps_local_day() -> None:
    at = "2026-11-02T23:30:00Z"
    d = fold([ev("email.sent", at, rep_id="berlin"), ev("email.sent", at, rep_id="nyc")], zone_of)
    assert rep(d, "berlin", date(2026, 11, 3))["emails_sent"] == 1  # 00:30 CET, next day
    assert rep(d, "nyc", date(2026, 11, 2))["emails_sent"] == 1  # 18:30 EST, same day
    assert len(d.rep) == 2


def test_the_offset_written_in_the_timestamp_does_not_matter() -> None:
    same_instant = ["2026-11-02T23:30:00Z", "2026-11-03T08:30:00+09:00", "2026-11-02T18:30:00-05:00"]
    d = fold([ev("email.sent", at, rep_id="berlin") for at in same_instant], zone_of)
    assert list(d.rep) == [("acme", "berlin", date(2026, 11, 3))]


@pytest.mark.parametrize(
    ("rep_id", "at", "day"),
    [
        # New York springs forward on 2026-03-08: 04:30Z is 00:30 EDT (a fixed -05:00 would say 23:30).
        ("nyc", "2026-03-09T04:30:00Z", date(2026, 3, 9)),
        ("nyc", "2026-03-08T04:30:00Z", date(2026, 3, 7)),  # still EST: 23:30 on the 7th
        # Berlin falls back on 2026-10-25: 22:30Z is 23:30 CET (a fixed +02:00 would say the 26th).
        ("berlin", "2026-10-25T22:30:00Z", date(2026, 10, 25)),
        ("berlin", "2026-10-24T22:30:00Z", date(2026, 10, 25)),  # CEST: 00:30 on the 25th
    ],
)
def test_days_follow_daylight_saving_changes(rep_id: str, at: str, day: date) -> None:
    assert list(fold([ev("email.sent", at, rep_id=rep_id)], zone_of).rep) == [("acme", rep_id, day)]


def test_events_without_rep_get_no_rep_row_but_count_for_channel_and_watermark() -> None:
    d = fold([ev("lead.created", rep_id=None, channel="organic_search")], zone_of)
    assert d.rep == {}
    assert channels(d) == {("acme", "organic_search", date(2026, 11, 2)): {"events": 1, "leads": 1}}
    assert d.watermark_rows() == [("acme", datetime(2026, 11, 2, 12, tzinfo=UTC), 1)]


def test_channel_rollup_uses_the_tenant_day_and_counts_the_funnel() -> None:
    at = "2026-11-02T23:30:00Z"  # globex is in Berlin: the 3rd, whatever the rep's timezone
    d = fold(
        [
            ev("lead.created", at, tenant="globex", channel="paid_search"),
            ev("lead.qualified", at, tenant="globex", channel="paid_search", stage="mql"),
            ev("lead.qualified", at, tenant="globex", channel="paid_search", stage="sql"),
            ev("deal.created", at, tenant="globex", channel="paid_search", amount="10"),
            ev("deal.won", at, tenant="globex", channel="paid_search", amount="2500.50"),
            ev("email.sent", at, tenant="globex", channel="paid_search"),
            ev("deal.lost", at, tenant="globex", channel="referral"),
            ev("email.sent", at, tenant="globex"),
        ],
        zone_of,
    )
    assert channels(d) == {
        ("globex", "paid_search", date(2026, 11, 3)): {
            "events": 6,
            "leads": 1,
            "mqls": 1,
            "sqls": 1,
            "deals_created": 1,
            "deals_won": 1,
            "revenue_won": Decimal("2500.50"),
        },
        ("globex", "referral", date(2026, 11, 3)): {"events": 1},
    }


def test_watermark_is_the_newest_event_time_and_the_count_per_tenant() -> None:
    d = fold(
        [
            ev("email.sent", "2026-11-02T10:00:00Z"),
            ev("email.sent", "2026-11-03T01:00:00+02:00"),  # 23:00Z: the newest
            ev("email.sent", "2026-11-01T10:00:00Z"),
            ev("email.sent", "2026-10-01T10:00:00Z", tenant="globex"),
        ],
        zone_of,
    )
    assert d.watermark_rows() == [
        ("acme", datetime(2026, 11, 2, 23, tzinfo=UTC), 3),
        ("globex", datetime(2026, 10, 1, 10, tzinfo=UTC), 1),
    ]
    assert d.events == 4


def test_a_batch_of_one_rep_day_combines_into_one_row() -> None:
    d = fold(
        [ev("email.sent", f"2026-11-02T{h:02d}:{m:02d}:00Z") for h in range(24) for m in range(60)], zone_of
    )
    assert len(d.rep) == 1
    assert rep(d)["emails_sent"] == 1440


def test_rows_come_sorted_by_key() -> None:
    d = fold([ev("email.sent", rep_id=r) for r in ["z", "a", "m"]], zone_of)
    assert [row[1] for row in d.rep_rows()] == ["a", "m", "z"]


def test_distinct_keeps_the_first_delivery_per_tenant_and_id() -> None:
    a1 = ev("email.sent", event_id="x", amount=None)
    a2 = ev("deal.won", event_id="x")
    b = ev("email.sent", event_id="x", tenant="globex")
    assert distinct([a1, a2, b, a1]) == [a1, b]


def test_merging_deltas_equals_folding_everything_at_once() -> None:
    first = [
        ev("deal.won", amount="1.5", channel="referral"),
        ev("call.completed", outcome="connected", duration_s=2),
    ]
    second = [ev("deal.won", amount="2.25", channel="referral"), ev("email.sent", "2026-11-05T00:00:00Z")]
    merged = fold(first, zone_of)
    merged.merge(fold(second, zone_of))
    whole = fold(first + second, zone_of)
    assert merged.rep_rows() == whole.rep_rows()
    assert merged.channel_rows() == whole.channel_rows()
    assert merged.watermark_rows() == whole.watermark_rows()
