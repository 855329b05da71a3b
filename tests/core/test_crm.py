"""The `crm-update/1` contract for a deal's history (SPEC 5.8): `close_date` and `forecast_category`
travel as CRM updates, checked on both sides of the topic, and the CRM fold keeps them without
counting anything differently."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from services.aggregator.folds.crm import Attributed, Change, EntityState
from services.core import crm
from services.core.crm import CrmUpdate, EntityProperty, EntityUpdate
from services.core.events import Source
from services.core.wire import Malformed, decode_message
from tests.aggregator.folds.support import event, update

AT = datetime(2026, 11, 2, 12, tzinfo=UTC)
RECEIVED = datetime(2026, 11, 2, 12, 0, 5, tzinfo=UTC)


def message(prop: EntityProperty, value: str | None) -> bytes:
    return crm.to_message(EntityUpdate("deal", "4711", prop, value, AT, "hubspot:1:2:3:4711"), "acme",
                          Source.HUBSPOT, RECEIVED)  # fmt: skip


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("close_date", "2026-12-31"),
        ("close_date", "2024-02-29"),
        ("close_date", None),  # cleared
        *[("forecast_category", c) for c in ("pipeline", "best_case", "commit", "closed", "omitted")],
        ("forecast_category", None),
    ],
)
def test_close_date_and_forecast_category_updates_decode_as_written(
    prop: EntityProperty, value: str | None
) -> None:
    decoded = decode_message(message(prop, value), [crm.SCHEMA_HEADER])
    assert decoded == CrmUpdate(
        "acme", f"hubspot:1:2:3:4711:{prop}", "hubspot", "deal", "4711", prop, value, AT, RECEIVED
    )
    assert prop in crm.PROPERTIES


BAD = [
    ("close_date", "31/12/2026"),
    ("close_date", "2026-02-30"),
    ("close_date", "2026-12-31T00:00:00Z"),
    ("close_date", "1787443200000"),
    ("close_date", "0001-01-01"),
    ("forecast_category", "maybe"),
    ("forecast_category", "Best Case"),
    ("forecast_category", "COMMIT"),
]


@pytest.mark.parametrize(("prop", "value"), BAD)
def test_a_bad_value_cannot_be_written(prop: EntityProperty, value: str) -> None:
    with pytest.raises(ValueError, match=f"the value of {prop} must"):
        message(prop, value)


@pytest.mark.parametrize(("prop", "value"), BAD)
def test_a_bad_value_on_the_topic_is_refused_naming_the_property(prop: str, value: str) -> None:
    written = orjson.loads(message(prop, None))  # type: ignore[arg-type]
    decoded = decode_message(orjson.dumps({**written, "value": value}), [crm.SCHEMA_HEADER])
    assert isinstance(decoded, Malformed)
    assert (decoded.reason, decoded.tenant) == ("invalid_field", "acme")
    assert f"the value of {prop} must" in decoded.detail


def test_the_crm_fold_keeps_the_new_properties_and_counts_the_same() -> None:
    t = "acme"
    events = [
        event(t, "deal.created", "2026-11-02T10:00:00Z", source="hubspot", deal_id="D1", event_id="dc"),
        event(t, "deal.won", "2026-11-10T03:00:00Z", source="hubspot", deal_id="D1", event_id="dw"),
    ]
    changes = [
        update(t, "deal", "D1", "owner", "11", "2026-11-02T10:00:05Z"),
        update(t, "deal", "D1", "amount", "1000", "2026-11-02T10:00:06Z"),
    ]
    history = [
        update(t, "deal", "D1", "close_date", "2026-11-30", "2026-11-02T10:00:07Z"),
        update(t, "deal", "D1", "forecast_category", "commit", "2026-11-04T00:00:00Z"),
        update(t, "deal", "D1", "close_date", None, "2026-11-05T00:00:00Z"),
    ]

    def state(updates: list[CrmUpdate]) -> EntityState:
        s = EntityState(t, "deal", "D1")
        for u in updates:
            s.add_change(Change.of(u))
        for e in events:
            s.add_event(Attributed.of(e))
        return s

    plain, kept = state(changes), state(changes + history)
    utc = ZoneInfo("UTC")
    assert kept.contribution(lambda *_: utc) == plain.contribution(lambda *_: utc)
    assert (kept.snapshot(), kept.facts(), kept.attributed()) == (
        plain.snapshot(),
        plain.facts(),
        plain.attributed(),
    )
    assert kept.value("forecast_category") == "commit"
    assert kept.latest("close_date") is not None
    # Stored and loaded back with the entity's history, as the fold keeps every change.
    loaded = EntityState.load(t, "deal", "D1", kept.history_json(), kept.events_json())
    assert loaded.changes == kept.changes
