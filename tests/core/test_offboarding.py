"""The pure rules of offboarding (services/core/offboarding.py): the order tables are deleted in, and
which events of a deleted slug still count. End to end: tests/system/test_offboarding.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from services.core.offboarding import OffboardingError, counts, deletion_order

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


@dataclass
class Item:
    tenant: str
    received_at: datetime


def test_referencing_tables_come_before_the_tables_they_reference() -> None:
    refs = [
        ("coaching_snapshots", "coaching_snapshot_weeks"),
        ("coaching_snapshot_weeks", "tenants"),
        ("api_keys", "tenants"),
        ("reps", "tenants"),
        ("reps", "reps"),  # a table referencing itself orders nothing
        ("other", "tenants"),  # a table without tenant rows orders nothing
    ]
    tables = ["tenants", "reps", "api_keys", "coaching_snapshot_weeks", "coaching_snapshots", "events"]
    order = deletion_order(tables, refs)
    assert sorted(order) == sorted(tables)
    for child, parent in refs:
        if child != parent and child in tables:
            assert order.index(child) < order.index(parent), (child, parent)
    assert order[-1] == "tenants"
    assert deletion_order(reversed(tables), reversed(refs)) == order  # the same whatever the input order


def test_a_cycle_of_foreign_keys_is_refused() -> None:
    with pytest.raises(OffboardingError, match="cycle among a, b"):
        deletion_order(["a", "b", "c"], [("a", "b"), ("b", "a")])


def test_a_deleted_tenants_events_count_only_when_received_after_it_was_created_again() -> None:
    register = {"gone": None, "reborn": T0}
    assert counts(Item("alive", T0 - timedelta(days=1)), register)
    assert not counts(Item("gone", T0 + timedelta(days=1)), register)
    assert not counts(Item("reborn", T0 - timedelta(microseconds=1)), register)
    assert counts(Item("reborn", T0), register)
    assert counts(Item("reborn", T0 + timedelta(seconds=1)), register)
