"""Deal history in event time (SPEC 5.8): stays, closes, owners and contact activity, in any order and
batching, redelivered, rebuilt."""

from __future__ import annotations

import asyncio
import itertools
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.aggregator.folds import FOLDS
from services.aggregator.folds.pipeline import DealChange, derive
from services.aggregator.rebuild import rebuild
from services.core import crm
from services.core.crm import CrmUpdate
from services.core.events import Source
from services.core.wire import Event
from tests.aggregator.folds.support import RECEIVED, commit, event, new_tenant, table, update

REPS = {"r1": "UTC", "r2": "America/New_York"}
OWNERS = {"11": "r1", "22": "r2"}
SF = Source.SALESFORCE
Item = Event | CrmUpdate


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def deal_update(t: str, deal_id: str, prop: str, value: str, when: str) -> CrmUpdate:
    """A HubSpot deal property update; for a property the message schema does not list yet, the update
    as the aggregator would decode it."""
    if prop in crm.PROPERTIES:
        return update(t, "deal", deal_id, prop, value, when)
    return CrmUpdate(
        t, f"hs-{deal_id}-{prop}-{when}", "hubspot", "deal", deal_id, prop, value, at(when), RECEIVED,
        attribution="crm_entity",
    )  # fmt: skip


def story(t: str) -> list[Item]:
    """Five deals: A told by canonical events, B by HubSpot events and property updates, C still open
    after skipping a stage, D a Salesforce win whose stage update names the closing stage, E lost and
    reopened; and calls, emails and meetings with A's contact and with a contact without a deal."""
    return [
        # A: discovery -> proposal -> discovery again -> negotiation -> won; handed from r1 to r2.
        event(t, "call.completed", "2026-10-30T09:00:00Z", rep_id="r1", contact_id="cA"),
        event(t, "deal.created", "2026-11-01T09:00:00Z", rep_id="r1", deal_id="A", contact_id="cA",
              amount="1000", close_date="2026-12-15", forecast_category="pipeline", stage="discovery"),
        event(t, "deal.stage_changed", "2026-11-03T09:00:00Z", rep_id="r1", deal_id="A", stage="proposal"),
        event(t, "deal.updated", "2026-11-04T09:00:00Z", rep_id="r2", deal_id="A", amount="1200",
              close_date="2027-01-10", forecast_category="commit"),
        event(t, "deal.stage_changed", "2026-11-05T09:00:00Z", rep_id="r2", deal_id="A", stage="discovery"),
        event(t, "deal.stage_changed", "2026-11-07T09:00:00Z", rep_id="r2", deal_id="A", stage="negotiation"),
        event(t, "deal.won", "2026-11-09T09:00:00Z", rep_id="r2", deal_id="A", amount="1500"),
        event(t, "email.sent", "2026-11-20T09:00:00Z", rep_id="r2", contact_id="cA"),
        event(t, "meeting.held", "2026-11-21T09:00:00Z", rep_id="r2", contact_id="nobody"),
        # B: HubSpot, one notification per property; the events name no rep.
        event(t, "deal.created", "2026-11-02T10:00:00Z", source="hubspot", deal_id="B"),
        event(t, "deal.stage_changed", "2026-11-02T10:00:01Z", source="hubspot", deal_id="B",
              stage="appointmentscheduled"),
        update(t, "deal", "B", "owner", "11", "2026-11-02T10:00:05Z"),
        update(t, "deal", "B", "amount", "500", "2026-11-02T10:00:06Z"),
        deal_update(t, "B", "close_date", "2026-11-30", "2026-11-02T10:00:07Z"),
        update(t, "deal", "B", "owner", "22", "2026-11-06T00:00:00Z"),
        event(t, "deal.stage_changed", "2026-11-08T10:00:00Z", source="hubspot", deal_id="B",
              stage="qualifiedtobuy"),
        deal_update(t, "B", "forecast_category", "best_case", "2026-11-08T10:00:00Z"),
        # The same move reported again, as a property update.
        update(t, "deal", "B", "stage", "qualifiedtobuy", "2026-11-08T10:00:02Z"),
        event(t, "deal.lost", "2026-11-10T10:00:00Z", source="hubspot", deal_id="B", stage="closedlost"),
        # C: discovery -> negotiation (proposal skipped), then handed to r2; open.
        event(t, "deal.created", "2026-11-03T08:00:00Z", rep_id="r1", deal_id="C", stage="discovery"),
        event(t, "deal.stage_changed", "2026-11-06T08:00:00Z", rep_id="r1", deal_id="C", stage="negotiation"),
        event(t, "deal.updated", "2026-11-08T08:00:00Z", rep_id="r2", deal_id="C"),
        # D: Salesforce reports the win and, in the same message, the stage it was won with.
        update(t, "deal", "D", "stage", "Prospecting", "2026-11-04T12:00:00Z", source=SF),
        event(t, "deal.won", "2026-11-12T12:00:00Z", source="salesforce", rep_id="r1", deal_id="D",
              stage="Closed Won"),
        update(t, "deal", "D", "stage", "Closed Won", "2026-11-12T12:00:00Z", source=SF),
        # E: lost, then moved to a stage again: open.
        event(t, "deal.created", "2026-11-01T07:00:00Z", rep_id="r2", deal_id="E", stage="discovery"),
        event(t, "deal.lost", "2026-11-05T07:00:00Z", rep_id="r2", deal_id="E"),
        event(t, "deal.stage_changed", "2026-11-06T07:00:00Z", rep_id="r2", deal_id="E", stage="proposal"),
    ]  # fmt: skip


DEAL_COLUMNS = (
    "deal_id", "rep_id", "created_rep_id", "contact_id", "created_at", "status", "closed_at", "stage",
    "stage_entered_at", "amount", "close_date", "forecast_category", "updated_at",
)  # fmt: skip
EXPECTED_DEALS = sorted(
    [
        ("A", "r2", "r1", "cA", at("2026-11-01T09:00:00Z"), "won", at("2026-11-09T09:00:00Z"),
         "negotiation", at("2026-11-07T09:00:00Z"), Decimal(1500), date(2027, 1, 10), "commit",
         at("2026-11-09T09:00:00Z")),
        ("B", "r2", "r1", None, at("2026-11-02T10:00:00Z"), "lost", at("2026-11-10T10:00:00Z"),
         "qualifiedtobuy", at("2026-11-08T10:00:00Z"), Decimal(500), date(2026, 11, 30), "best_case",
         at("2026-11-10T10:00:00Z")),
        ("C", "r2", "r1", None, at("2026-11-03T08:00:00Z"), "open", None, "negotiation",
         at("2026-11-06T08:00:00Z"), None, None, None, at("2026-11-08T08:00:00Z")),
        ("D", "r1", None, None, None, "won", at("2026-11-12T12:00:00Z"), "Prospecting",
         at("2026-11-04T12:00:00Z"), None, None, None, at("2026-11-12T12:00:00Z")),
        ("E", "r2", "r2", None, at("2026-11-01T07:00:00Z"), "open", None, "proposal",
         at("2026-11-06T07:00:00Z"), None, None, None, at("2026-11-06T07:00:00Z")),
    ],
    key=repr,
)  # fmt: skip
STAY_COLUMNS = (
    "deal_id", "stage", "entered_at", "left_at", "next", "rep_id", "deal_created_at", "reached_later",
    "won_after",
)  # fmt: skip
A0, B0, C0, E0 = (at(s) for s in ("2026-11-01T09:00:00Z", "2026-11-02T10:00:00Z", "2026-11-03T08:00:00Z",
                                  "2026-11-01T07:00:00Z"))  # fmt: skip
EXPECTED_STAYS = sorted(
    [
        ("A", "discovery", A0, at("2026-11-03T09:00:00Z"), "proposal", "r1", A0,
         ["proposal", "discovery", "negotiation"], True),
        ("A", "proposal", at("2026-11-03T09:00:00Z"), at("2026-11-05T09:00:00Z"), "discovery", "r1", A0,
         ["discovery", "negotiation"], True),
        ("A", "discovery", at("2026-11-05T09:00:00Z"), at("2026-11-07T09:00:00Z"), "negotiation", "r2", A0,
         ["negotiation"], True),
        ("A", "negotiation", at("2026-11-07T09:00:00Z"), at("2026-11-09T09:00:00Z"), "won", "r2", A0, [],
         True),
        # Entered before the first owner update: the first owner's (as the CRM fold attributes).
        ("B", "appointmentscheduled", at("2026-11-02T10:00:01Z"), at("2026-11-08T10:00:00Z"),
         "qualifiedtobuy", "r1", B0, ["qualifiedtobuy"], False),
        ("B", "qualifiedtobuy", at("2026-11-08T10:00:00Z"), at("2026-11-10T10:00:00Z"), "lost", "r2", B0, [],
         False),
        ("C", "discovery", C0, at("2026-11-06T08:00:00Z"), "negotiation", "r1", C0, ["negotiation"], False),
        ("C", "negotiation", at("2026-11-06T08:00:00Z"), None, None, "r1", C0, [], False),
        ("D", "Prospecting", at("2026-11-04T12:00:00Z"), at("2026-11-12T12:00:00Z"), "won", "r1", None, [],
         True),
        ("E", "discovery", E0, at("2026-11-05T07:00:00Z"), "lost", "r2", E0, ["proposal"], False),
        ("E", "proposal", at("2026-11-06T07:00:00Z"), None, None, "r2", E0, [], False),
    ],
    key=repr,
)  # fmt: skip
EXPECTED_ACTIVITY = [("cA", at("2026-11-20T09:00:00Z"))]


async def history(pool: asyncpg.Pool, t: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "deals": await table(pool, "pipeline_deals", t, *DEAL_COLUMNS),
        "stays": await table(pool, "deal_stage_stays", t, *STAY_COLUMNS),
        "activity": await table(pool, "contact_activity", t, "contact_id", "last_activity_at"),
    }


async def changes(pool: asyncpg.Pool, t: str) -> list[tuple[Any, ...]]:
    return await table(pool, "deal_changes", t, "deal_id", "change_id", "at", "kind", "value", "rep_id")


async def deliver(pool: asyncpg.Pool, batches: list[list[Item]]) -> None:
    for batch in batches:
        await commit(
            pool, [i for i in batch if isinstance(i, Event)], [i for i in batch if isinstance(i, CrmUpdate)]
        )


async def assert_history(pool: asyncpg.Pool, t: str) -> None:
    assert await history(pool, t) == {
        "deals": EXPECTED_DEALS,
        "stays": EXPECTED_STAYS,
        "activity": EXPECTED_ACTIVITY,
    }


async def test_a_small_pipeline_folds_to_its_hand_computed_history(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    await deliver(pool, [story(t)])
    await assert_history(pool, t)
    kinds = {(r[0], r[3]) for r in await changes(pool, t)}
    assert {("B", "owner"), ("D", "won"), ("A", "close_date"), ("B", "forecast_category")} <= kinds


@st.composite
def deliveries(draw: st.DrawFn, n: int) -> list[list[int]]:
    """Indexes 0..n-1 in any order, some delivered twice, cut into batches anywhere."""
    order = draw(st.permutations(range(n)))
    again = draw(st.lists(st.integers(0, n - 1), max_size=4))
    stream = list(order) + again
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


N_ITEMS = 28


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=deliveries(N_ITEMS))
async def test_any_order_and_batching_gives_the_same_history(
    pool: asyncpg.Pool, plan: list[list[int]]
) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    items = story(t)
    assert len(items) == N_ITEMS
    await deliver(pool, [[items[i] for i in batch] for batch in plan])
    await assert_history(pool, t)


async def test_redelivery_changes_nothing(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    items = story(t)
    await deliver(pool, [items])
    once = await changes(pool, t)
    await deliver(pool, [items[::-1], items[::3] + items[::3]])
    assert await changes(pool, t) == once
    await assert_history(pool, t)


async def test_a_rebuild_gives_what_live_folding_gave(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS, aliases=OWNERS)
    items = story(t)[::-1]
    await deliver(pool, [items[i : i + 4] for i in range(0, len(items), 4)])
    live = await history(pool, t), await changes(pool, t)
    async with pool.acquire() as conn, conn.transaction():
        await rebuild(conn, [t])
    assert (await history(pool, t), await changes(pool, t)) == live
    await assert_history(pool, t)


async def test_a_deal_naming_a_contact_and_a_call_with_it_folded_at_once_by_two_consumers(
    pool: asyncpg.Pool,
) -> None:
    for _ in range(4):
        t = await new_tenant(pool, reps=REPS)
        deal = event(t, "deal.created", "2026-11-01T09:00:00Z", rep_id="r1", deal_id="A", contact_id="cA")
        call = event(t, "call.completed", "2026-11-02T09:00:00Z", rep_id="r1", contact_id="cA")
        await asyncio.gather(commit(pool, [deal]), commit(pool, [call]))
        assert await table(pool, "contact_activity", t, "contact_id", "last_activity_at") == [
            ("cA", at("2026-11-02T09:00:00Z"))
        ]


async def test_a_contact_no_deal_names_any_longer_loses_its_activity_row(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS)
    await commit(
        pool,
        [
            event(t, "call.completed", "2026-11-02T09:00:00Z", rep_id="r1", contact_id="c1"),
            event(t, "call.completed", "2026-11-03T09:00:00Z", rep_id="r1", contact_id="c2"),
            event(t, "deal.created", "2026-11-01T09:00:00Z", rep_id="r1", deal_id="A", contact_id="c1"),
        ],
    )
    assert await table(pool, "contact_activity", t, "contact_id") == [("c1",)]
    await commit(pool, [], [update(t, "deal", "A", "contact", "c2", "2026-11-04T00:00:00Z", source=SF)])
    assert await table(pool, "contact_activity", t, "contact_id", "last_activity_at") == [
        ("c2", at("2026-11-03T09:00:00Z"))
    ]


async def test_a_change_whose_key_is_taken_keeps_the_stored_one(pool: asyncpg.Pool) -> None:
    """The batch's changes are COPYed in a savepoint; a key taken already (no batch makes one, a hand
    could) rolls that back and the insert that leaves the stored change alone runs instead."""
    t = await new_tenant(pool, reps=REPS)
    created = event(t, "deal.created", "2026-11-01T09:00:00Z", rep_id="r1", deal_id="A", amount="100")
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO deal_changes (tenant, deal_id, change_id, at, kind, value) VALUES ($1, 'A', $2, $3,"
            " 'amount', '999')",
            t, f"e:{created.event_id}:amount", at("2026-11-01T09:00:00Z"),
        )  # fmt: skip
    await commit(pool, [created])
    assert [(r[1].rsplit(":", 1)[1], r[4]) for r in await changes(pool, t)] == [
        ("amount", "999"), ("created", None), ("owner", "r1"),
    ]  # fmt: skip
    deals = await table(pool, "pipeline_deals", t, "deal_id", "rep_id", "amount")
    assert deals == [("A", "r1", Decimal(999))]


async def test_events_without_deals_or_contacts_write_nothing(pool: asyncpg.Pool) -> None:
    t = await new_tenant(pool, reps=REPS)
    await commit(
        pool,
        [
            event(t, "call.completed", "2026-11-02T09:00:00Z", rep_id="r1", contact_id="c1"),
            event(t, "deal.won", "2026-11-02T09:00:00Z", rep_id="r1", amount="5"),  # no deal id
            event(t, "lead.created", "2026-11-02T09:00:00Z", rep_id="r1", contact_id="c1"),
        ],
    )
    for name in ("deal_changes", "pipeline_deals", "deal_stage_stays", "contact_activity"):
        assert await table(pool, name, t, "tenant") == []


def test_at_one_instant_a_stage_change_comes_before_the_close_and_the_creation_first() -> None:
    t0 = at("2026-11-01T00:00:00Z")
    same = [
        DealChange("z", t0, "won", None, None),
        DealChange("y", t0, "stage", "proposal", None),
        DealChange("x", t0, "stage", "discovery", None),
        DealChange("zz", t0, "created", None, None),
    ]
    deal, stays = derive("t", "d", same)
    assert deal[5:8] == (t0, "won", t0)
    assert [(s[3], s[4], s[5]) for s in stays] == [("discovery", t0, "proposal"), ("proposal", t0, "won")]


def test_the_registry_rebuilds_the_history_but_not_the_stage_settings() -> None:
    [fold] = [f for f in FOLDS if f.name == "pipeline"]
    assert fold.tables == ("deal_changes", "pipeline_deals", "deal_stage_stays", "contact_activity")
    assert [f.name for f in FOLDS][-2:] == ["pipeline", "subscriptions"]  # the lock order documented there
