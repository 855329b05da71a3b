"""CRM entity state: HubSpot deals and contacts attributed by event time, in any order and batching."""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.crm import CrmUpdate
from services.core.wire import Event
from tests.aggregator.folds.support import (
    channel_rollups,
    commit,
    event,
    new_tenant,
    rep_rollups,
    table,
    update,
)

REPS = {"r1": "UTC", "r2": "America/New_York"}
OWNERS = {"11": "r1", "22": "r2"}
Item = Event | CrmUpdate


def scenario(t: str) -> list[Item]:
    """A HubSpot deal D1 of contact C1, and the contact's lead, told in separate notifications."""
    return [
        event(t, "lead.created", "2026-11-01T09:00:00Z", source="hubspot", contact_id="C1", event_id="lc"),
        update(t, "contact", "C1", "channel", "paid_search", "2026-11-01T09:00:01Z", event_id="u-ch"),
        # Assigned just after creation: the lead still belongs to this first owner.
        update(t, "contact", "C1", "owner", "11", "2026-11-01T09:00:02Z", event_id="u-co"),
        event(
            t, "call.completed", "2026-11-01T09:30:00Z", rep_id="r1", contact_id="C1", event_id="call",
            direction="outbound", outcome="connected",
        ),
        event(t, "lead.qualified", "2026-11-03T00:00:00Z", source="hubspot", contact_id="C1", stage="mql",
              event_id="mql"),
        event(t, "deal.created", "2026-11-02T10:00:00Z", source="hubspot", deal_id="D1", event_id="dc"),
        update(t, "deal", "D1", "owner", "11", "2026-11-02T10:00:05Z", event_id="u-o1"),
        update(t, "deal", "D1", "amount", "1000", "2026-11-02T10:00:06Z", event_id="u-a1"),
        update(t, "deal", "D1", "contact", "C1", "2026-11-02T10:00:07Z", event_id="u-dc"),
        update(t, "deal", "D1", "owner", "22", "2026-11-05T12:00:00Z", event_id="u-o2"),
        # Won in r2's evening of the 9th (New York), corrected to 1500 two days later.
        event(t, "deal.won", "2026-11-10T03:00:00Z", source="hubspot", deal_id="D1", stage="closedwon",
              event_id="dw"),
        update(t, "deal", "D1", "amount", "1500", "2026-11-12T00:00:00Z", event_id="u-a2"),
    ]  # fmt: skip


EXPECTED_REPS = {
    ("r1", date(2026, 11, 1)): {"events": 2, "calls": 1, "dials": 1, "connects": 1, "leads_created": 1},
    ("r1", date(2026, 11, 2)): {"events": 1, "deals_created": 1},
    ("r1", date(2026, 11, 3)): {"events": 1, "leads_mql": 1},
    ("r2", date(2026, 11, 9)): {"events": 1, "deals_won": 1, "revenue_won": Decimal(1500)},
}
EXPECTED_CHANNELS = {
    ("paid_search", date(2026, 11, 1)): {"events": 1, "leads": 1},
    ("paid_search", date(2026, 11, 3)): {"events": 1, "mqls": 1},
}
UTC_ = datetime.fromisoformat


async def deliver(pool: asyncpg.Pool, batches: list[list[Item]]) -> None:
    for batch in batches:
        await commit(
            pool,
            [i for i in batch if isinstance(i, Event)],
            [i for i in batch if isinstance(i, CrmUpdate)],
        )


async def assert_final_state(pool: asyncpg.Pool, t: str) -> None:
    assert await rep_rollups(pool, t) == EXPECTED_REPS
    assert await channel_rollups(pool, t) == EXPECTED_CHANNELS
    facts = await table(
        pool, "deal_facts", t, "event_id", "type", "deal_id", "contact_id", "rep_id", "amount"
    )
    assert facts == [
        ("dc", "deal.created", "D1", "C1", "r1", Decimal(1500)),
        ("dw", "deal.won", "D1", "C1", "r2", Decimal(1500)),
    ]
    deal = await table(
        pool, "crm_entities", t, "entity", "entity_id", "owner", "rep_id", "amount", "contact_id"
    )
    assert deal == [
        ("contact", "C1", "11", "r1", None, None),
        ("deal", "D1", "22", "r2", Decimal(1500), "C1"),
    ]
    lead = await table(pool, "leads", t, "contact_id", "channel", "created_at", "speed_s", "mql_at")
    assert lead == [
        ("C1", "paid_search", UTC_("2026-11-01T09:00:00Z"), Decimal(1800), UTC_("2026-11-03T00:00:00Z"))
    ]
    mark = await pool.fetchrow("SELECT as_of, events_folded FROM tenant_watermarks WHERE tenant = $1", t)
    assert (mark["as_of"], mark["events_folded"]) == (UTC_("2026-11-10T03:00:00Z"), 5)


async def test_a_deal_is_attributed_by_owner_at_the_time_and_its_latest_amount(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    await deliver(pool, [scenario(t)])
    await assert_final_state(pool, t)


async def test_a_win_before_its_amount_gets_revenue_when_the_amount_arrives_and_follows_corrections(
    pool: asyncpg.Pool,
) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    won = event(t, "deal.won", "2026-11-10T15:00:00Z", source="hubspot", deal_id="D9")
    await commit(pool, [won], [update(t, "deal", "D9", "owner", "11", "2026-11-01T00:00:00Z")])
    day = ("r1", date(2026, 11, 10))
    assert (await rep_rollups(pool, t))[day] == {"events": 1, "deals_won": 1}

    await commit(pool, [], [update(t, "deal", "D9", "amount", "700.50", "2026-11-09T00:00:00Z")])
    assert (await rep_rollups(pool, t))[day]["revenue_won"] == Decimal("700.50")

    # An older amount arriving late changes nothing; a newer one corrects the revenue, never adds to it.
    await commit(pool, [], [update(t, "deal", "D9", "amount", "99", "2026-11-02T00:00:00Z")])
    assert (await rep_rollups(pool, t))[day]["revenue_won"] == Decimal("700.50")
    await commit(pool, [], [update(t, "deal", "D9", "amount", "900", "2026-11-20T00:00:00Z")])
    assert await rep_rollups(pool, t) == {day: {"events": 1, "deals_won": 1, "revenue_won": Decimal(900)}}


async def test_an_owner_change_dated_before_a_win_moves_the_win_one_dated_after_does_not(
    pool: asyncpg.Pool,
) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    won = event(t, "deal.won", "2026-11-10T15:00:00Z", source="hubspot", deal_id="D7", amount="10")
    await commit(pool, [won], [update(t, "deal", "D7", "owner", "11", "2026-11-01T00:00:00Z")])
    await commit(pool, [], [update(t, "deal", "D7", "owner", "22", "2026-11-11T00:00:00Z")])
    assert await rep_rollups(pool, t) == {
        ("r1", date(2026, 11, 10)): {"events": 1, "deals_won": 1, "revenue_won": Decimal(10)}
    }
    await commit(pool, [], [update(t, "deal", "D7", "owner", "22", "2026-11-10T14:00:00Z")])
    assert await rep_rollups(pool, t) == {
        ("r2", date(2026, 11, 10)): {"events": 1, "deals_won": 1, "revenue_won": Decimal(10)}
    }


async def test_redelivered_updates_and_events_count_once(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    items = scenario(t)
    await deliver(pool, [items, items[::2], items[1::3] + items[1::3]])
    await assert_final_state(pool, t)


async def test_deals_of_an_unknown_owner_stay_unassigned_and_the_owner_is_listed(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    won = event(t, "deal.won", "2026-11-10T15:00:00Z", source="hubspot", deal_id="D5", amount="10")
    await commit(pool, [won], [update(t, "deal", "D5", "owner", "99", "2026-11-01T00:00:00Z")])
    assert await rep_rollups(pool, t) == {}
    quality = await table(pool, "data_quality", t, "source", "alias_kind", "alias_value", "events")
    assert quality == [("hubspot", "hubspot_owner_id", "99", 1)]
    facts = await table(pool, "deal_facts", t, "event_id", "rep_id", "amount")
    assert facts == [(won.event_id, None, Decimal(10))]


@st.composite
def deliveries(draw: st.DrawFn, n: int) -> list[list[int]]:
    """Indexes 0..n-1 in any order, some delivered twice, cut into batches anywhere."""
    order = draw(st.permutations(range(n)))
    again = draw(st.lists(st.integers(0, n - 1), max_size=4))
    stream = list(order) + again
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries(12))
async def test_any_order_and_batching_gives_the_same_attribution(
    pool: asyncpg.Pool, plan: list[list[int]]
) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    items: list[Any] = scenario(t)
    assert len(items) == 12
    await deliver(pool, [[items[i] for i in batch] for batch in plan])
    await assert_final_state(pool, t)


async def test_an_event_keeps_its_own_rep_until_its_entity_has_an_owner(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    won = event(
        t, "deal.won", "2026-11-10T15:00:00Z", source="hubspot", deal_id="D3", rep_id="r1", amount="5"
    )
    await commit(pool, [won])
    assert await rep_rollups(pool, t) == {
        ("r1", date(2026, 11, 10)): {"events": 1, "deals_won": 1, "revenue_won": Decimal(5)}
    }
    await commit(pool, [], [update(t, "deal", "D3", "owner", "22", "2026-11-12T00:00:00Z")])
    assert await rep_rollups(pool, t) == {
        ("r2", date(2026, 11, 10)): {"events": 1, "deals_won": 1, "revenue_won": Decimal(5)}
    }
