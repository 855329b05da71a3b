"""Coaching over time: a rep's priorities week by week and whether each gap closed, read from weekly
snapshots where the api took them and computed for the weeks before; and the snapshot itself, taken
exactly once per tenant and week however many api processes race for it.

Every expected number is worked out here from the counts planted per week: the connect rate over
the four weeks ending on each Sunday, the peers' median and MAD, the SPEC 5.9 priority criterion.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.coaching import history_queries, snapshots
from services.api.coaching.history import WeekCoaching, ended_weeks, progress, shortfall
from services.api.kit.reads import AnswerCache, ReadPool, Reads
from services.core.db import asyncpg_dsn
from services.core.models import RepDaily
from tests.api.factories import RollupFactory, api_client, bearer
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory

SCALE = 1.4826
DIALS_PER_WEEK = 70  # every rep: identical dials, so `dials` (MAD 0) is nobody's priority
PEERS = {"p1": 18, "p2": 20, "p3": 21, "p4": 22, "p5": 24, "p6": 19}  # connects a week, of 70
LOW, GOOD = 7, 21
HISTORY_WEEKS = 12
PLANTED_WEEKS = HISTORY_WEEKS + 4  # the first history week's window reaches three weeks back


def last_ended_monday(today: date) -> date:
    return today - timedelta(days=today.weekday() + 7)


def mondays(count: int, today: date | None = None) -> list[date]:
    """The Mondays of the last `count` ended weeks (UTC), oldest first."""
    last = last_ended_monday(today or datetime.now(UTC).date())
    return [last - timedelta(weeks=count - 1 - i) for i in range(count)]


# --- planted organisations ------------------------------------------------------------------------


@dataclass
class Planted:
    """Connects per rep and week (Monday); every rep dials DIALS_PER_WEEK every week."""

    tenant: TenantCtx
    connects: dict[str, dict[date, int]]

    def window_rates(self, monday: date) -> dict[str, float]:
        weeks = [monday - timedelta(weeks=k) for k in range(4)]
        return {
            rep: sum(by_week.get(w, 0) for w in weeks) / (DIALS_PER_WEEK * 4)
            for rep, by_week in self.connects.items()
        }

    def standing(self, rep: str, monday: date) -> dict[str, Any]:
        """The rep's connect rate standing over the four weeks ending with `monday`'s week."""
        rates = self.window_rates(monday)
        value = rates[rep]
        peers = [v for r, v in rates.items() if r != rep]
        median = statistics.median(peers)
        mad = statistics.median(abs(v - median) for v in peers)
        z = (value - median) / (SCALE * mad) if mad and len(peers) >= 5 else None
        return {"value": value, "peer_median": median, "gap_pct": (value - median) / median, "z": z}

    def is_priority(self, rep: str, monday: date) -> bool:
        s = self.standing(rep, monday)
        return s["z"] is not None and s["z"] <= -1.0 and abs(s["gap_pct"]) >= 0.10


async def plant(engine: AsyncEngine, tenants: TenantFactory, connects: dict[str, dict[date, int]]) -> Planted:
    """A tenant whose reps made these weekly connects, spread over the week's days as the fold would
    have counted them."""
    t = await tenants.create(prefix="hist")
    rollups = RollupFactory(engine)
    rows = []
    for rep, by_week in connects.items():
        await rollups.rep(t.slug, rep)
        for monday, count in by_week.items():
            for d in range(7):
                share = count // 7 + (1 if d < count % 7 else 0)
                day = monday + timedelta(days=d)
                rows.append({"tenant": t.slug, "rep_id": rep, "day": day, "dials": 10, "connects": share})
    async with engine.begin() as conn:
        await conn.execute(insert(RepDaily), rows)
    await rollups.watermark(t.slug, datetime.now(UTC))
    return Planted(t, connects)


def weekly(weeks: list[date], count: int | dict[int, int]) -> dict[date, int]:
    """`count` connects every week, or {first week index: count} from that week on."""
    if isinstance(count, int):
        return dict.fromkeys(weeks, count)
    out, current = {}, 0
    for i, w in enumerate(weeks):
        current = count.get(i, current)
        out[w] = current
    return out


@pytest.fixture(scope="module")
async def org(engine: AsyncEngine, tenants: TenantFactory) -> Planted:
    """Six peers; `improver` connects 7 of 70 until the 4th history week and 21 from the 5th on;
    `stuck` connects 7 of 70 throughout."""
    weeks = mondays(PLANTED_WEEKS)
    first_better = PLANTED_WEEKS - HISTORY_WEEKS + 4  # the 5th history week
    connects = {rep: weekly(weeks, count) for rep, count in PEERS.items()}
    connects["improver"] = weekly(weeks, {0: LOW, first_better: GOOD})
    connects["stuck"] = weekly(weeks, LOW)
    return await plant(engine, tenants, connects)


@pytest.fixture(scope="module")
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(stack) as client:
        yield client


async def get_history(api: httpx.AsyncClient, t: TenantCtx, rep: str, **params: Any) -> dict[str, Any]:
    r = await api.get(f"/v1/coaching/reps/{rep}/history", params=params, headers=bearer(t.api_key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def approx(value: float | None) -> Any:
    return None if value is None else pytest.approx(value, rel=1e-9)


# --- the history read ------------------------------------------------------------------------------


@pytest.mark.parametrize("rep", ["improver", "stuck"])
async def test_each_week_shows_the_priorities_as_they_stood(
    api: httpx.AsyncClient, org: Planted, rep: str
) -> None:
    body = await get_history(api, org.tenant, rep)
    assert (body["rep_id"], body["scope"], body["min_sample"], body["window_days"]) == (rep, "tenant", 20, 28)
    weeks = body["weeks"]
    assert [date.fromisoformat(w["week_start"]) for w in weeks] == mondays(HISTORY_WEEKS)
    for w in weeks:
        monday = date.fromisoformat(w["week_start"])
        assert (w["week_end"], w["to"]) == (str(monday + timedelta(days=6)),) * 2
        assert w["from"] == str(monday - timedelta(days=21))
        assert (w["source"], w["taken_at"], w["coached"]) == ("computed", None, True)  # no snapshot yet
        want = ["connect_rate"] if org.is_priority(rep, monday) else []
        assert [p["metric"] for p in w["priorities"]] == want, monday
        for p in w["priorities"]:
            s = org.standing(rep, monday)
            assert (p["value"], p["peer_median"], p["gap_pct"], p["z"]) == tuple(
                approx(s[k]) for k in ("value", "peer_median", "gap_pct", "z")
            )


async def test_a_gap_that_closes_after_week_four(api: httpx.AsyncClient, org: Planted) -> None:
    body = await get_history(api, org.tenant, "improver")
    weeks = mondays(HISTORY_WEEKS)
    [track] = body["progress"]
    assert (track["metric"], track["since"]) == ("connect_rate", str(weeks[0]))
    # The four weeks ending with the 8th history week are all after the change: the gap is gone.
    assert org.standing("improver", weeks[7])["gap_pct"] > -0.10
    assert [w["week_start"] for w in track["weeks"]] == [str(w) for w in weeks]
    for got, monday in zip(track["weeks"], weeks, strict=True):
        s = org.standing("improver", monday)
        assert {k: got[k] for k in s} == {k: approx(v) for k, v in s.items()}
        assert got["priority"] == org.is_priority("improver", monday)
    closed = [abs(org.standing("improver", w)["gap_pct"]) < 0.10 for w in weeks]
    first_closed = max(i for i in range(len(weeks)) if not closed[i]) + 1
    assert first_closed <= 7
    assert track["closed"] is True
    assert track["closed_since"] == str(weeks[first_closed])
    assert track["weeks_as_priority"] == sum(org.is_priority("improver", w) for w in weeks)
    assert track["gap_pct_then"] == approx(org.standing("improver", weeks[0])["gap_pct"])
    assert track["gap_pct_now"] == approx(org.standing("improver", weeks[-1])["gap_pct"])


async def test_a_gap_that_does_not_close(api: httpx.AsyncClient, org: Planted) -> None:
    body = await get_history(api, org.tenant, "stuck")
    weeks = mondays(HISTORY_WEEKS)
    [track] = body["progress"]
    assert (track["metric"], track["since"], track["closed"], track["closed_since"]) == (
        "connect_rate",
        str(weeks[0]),
        False,
        None,
    )
    assert track["weeks_as_priority"] == HISTORY_WEEKS
    assert all(w["priority"] for w in track["weeks"])
    then, now = (org.standing("stuck", w)["gap_pct"] for w in (weeks[0], weeks[-1]))
    assert (track["gap_pct_then"], track["gap_pct_now"]) == (approx(then), approx(now))
    assert now < -0.10  # the peers' median moved a little as `improver` got better; the gap did not close


async def test_a_rep_without_priorities_has_no_progress(api: httpx.AsyncClient, org: Planted) -> None:
    body = await get_history(api, org.tenant, "p3", weeks=3)
    assert len(body["weeks"]) == 3
    assert all(w["priorities"] == [] for w in body["weeks"])
    assert body["progress"] == []


@pytest.mark.parametrize("weeks", ["0", "53", "-1", "twelve", "1.5"])
async def test_weeks_out_of_bounds_is_a_422_naming_it(
    api: httpx.AsyncClient, org: Planted, weeks: str
) -> None:
    r = await api.get(
        "/v1/coaching/reps/stuck/history", params={"weeks": weeks}, headers=bearer(org.tenant.api_key)
    )
    assert r.status_code == 422, r.text
    assert [d["field"] for d in r.json()["error"]["details"]] == ["query.weeks"]


async def test_an_unknown_rep_is_a_404(api: httpx.AsyncClient, org: Planted) -> None:
    r = await api.get("/v1/coaching/reps/nobody/history", headers=bearer(org.tenant.api_key))
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


# --- snapshots -----------------------------------------------------------------------------------


class Snapshotter:
    """What one api process snapshots with: its own pool (two connections) and reads."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.reads = Reads(ReadPool(pool), AnswerCache())

    async def week(self, tenant: str, monday: date) -> bool:
        return await snapshots.snapshot_week(self.pool, self.reads, tenant, monday, datetime.now(UTC))


@pytest.fixture
async def snapshotters(stack: Stack) -> AsyncIterator[list[Snapshotter]]:
    dsn = asyncpg_dsn(stack.database_url)
    pools = [await asyncpg.create_pool(dsn, min_size=0, max_size=2) for _ in range(4)]
    try:
        yield [Snapshotter(p) for p in pools]
    finally:
        for p in pools:
            await p.close()


async def snapshot_rows(engine: AsyncEngine, tenant: str) -> list[Any]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT w.week_start, w.reps, w.taken_at, s.rep_id, s.metrics FROM coaching_snapshot_weeks w "
                "LEFT JOIN coaching_snapshots s USING (tenant, week_start) WHERE w.tenant = :t "
                "ORDER BY w.week_start, s.rep_id"
            ),
            {"t": tenant},
        )
        return list(found)


async def small_org(engine: AsyncEngine, tenants: TenantFactory, weeks: int = 6) -> Planted:
    planted = mondays(weeks)
    connects = {rep: weekly(planted, count) for rep, count in PEERS.items()}
    connects["stuck"] = weekly(planted, LOW)
    return await plant(engine, tenants, connects)


async def test_a_snapshot_week_is_read_as_it_was_taken(
    api: httpx.AsyncClient, engine: AsyncEngine, tenants: TenantFactory, snapshotters: list[Snapshotter]
) -> None:
    org = await small_org(engine, tenants)
    rollups = RollupFactory(engine)
    await rollups.rep(org.tenant.slug, "late", active=False)  # not an active rep when the week is taken
    before, _ = mondays(2)
    assert await snapshotters[0].week(org.tenant.slug, before)
    taken = await snapshot_rows(engine, org.tenant.slug)
    assert {r.rep_id for r in taken} == {*PEERS, "stuck"}
    assert {(r.week_start, r.reps) for r in taken} == {(before, len(PEERS) + 1)}
    # After the snapshot: `stuck` connects 140 more on the last Sunday of both windows, and `late` starts.
    await rollups.day(org.tenant.slug, "stuck", before + timedelta(days=6), connects=140)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE reps SET active = true WHERE tenant = :t"), {"t": org.tenant.slug})

    body = await get_history(api, org.tenant, "stuck", weeks=2)
    old, new = body["weeks"]
    assert (old["source"], old["taken_at"] is not None, new["source"]) == ("snapshot", True, "computed")
    assert [p["metric"] for p in old["priorities"]] == ["connect_rate"]
    assert old["priorities"][0]["value"] == approx(org.standing("stuck", before)["value"])
    assert new["priorities"] == []  # 140 more connects: the computed week sees them
    [track] = body["progress"]
    assert [w["value"] for w in track["weeks"]] == [
        approx(org.standing("stuck", before)["value"]),
        approx((LOW * 4 + 140) / (DIALS_PER_WEEK * 4)),
    ]
    late = await get_history(api, org.tenant, "late", weeks=2)
    assert [(w["source"], w["coached"]) for w in late["weeks"]] == [("snapshot", False), ("computed", True)]


async def test_concurrent_snapshots_of_one_week_take_it_once(
    engine: AsyncEngine, tenants: TenantFactory, snapshotters: list[Snapshotter]
) -> None:
    org = await small_org(engine, tenants, weeks=4)
    monday = mondays(1)[0]
    results = await asyncio.gather(*(s.week(org.tenant.slug, monday) for s in snapshotters))
    assert sorted(results) == [False, False, False, True]
    assert not await snapshotters[1].week(
        org.tenant.slug, monday
    )  # once committed, the marker row refuses it
    rows = await snapshot_rows(engine, org.tenant.slug)
    assert len(rows) == len(PEERS) + 1
    assert len({r.taken_at for r in rows}) == 1


async def backdate(engine: AsyncEngine, *slugs: str) -> None:
    """Tenants that existed when last week ended."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET created_at = now() - interval '60 days' WHERE slug = ANY(:s)"),
            {"s": list(slugs)},
        )


def this_monday() -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday())


# The snapshotters below take the current week (its window ends next Sunday), which is due for any
# tenant created now, as of a week and two days from now: no api process of the test session (with
# the real clock) takes these tenants' weeks meanwhile.
RACE_NOW = timedelta(days=9)


async def test_four_snapshot_passes_racing_take_each_tenant_week_once(
    engine: AsyncEngine, tenants: TenantFactory, snapshotters: list[Snapshotter]
) -> None:
    orgs = [await small_org(engine, tenants, weeks=5) for _ in range(4)]
    slugs = {o.tenant.slug for o in orgs}
    now, week = datetime.now(UTC) + RACE_NOW, this_monday()
    results = await asyncio.gather(*(snapshots.run_pass(s.pool, s.reads, now, 10_000) for s in snapshotters))
    taken = [t for r in results for t in r.taken]
    assert len(taken) == len(set(taken))  # no tenant week twice
    assert sorted(t for t in taken if t[0] in slugs) == sorted((slug, week) for slug in slugs)
    assert all(r.failed == 0 for r in results)
    for slug in slugs:
        rows = await snapshot_rows(engine, slug)
        assert {(r.week_start, r.rep_id) for r in rows} == {(week, rep) for rep in [*PEERS, "stuck"]}
        assert len({r.taken_at for r in rows}) == 1
    again = await snapshots.run_pass(snapshotters[0].pool, snapshotters[0].reads, now, 10_000)
    assert not {t for t, _ in again.taken} & slugs


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def markers(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM coaching_snapshot_weeks")) or 0)


async def test_two_api_processes_snapshot_each_tenant_week_once(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    orgs = [await small_org(engine, tenants, weeks=5) for _ in range(3)]
    slugs = [o.tenant.slug for o in orgs]
    week = this_monday()
    # The api processes of this test take the current week (see RACE_NOW), at once.
    monkeypatch.setattr(snapshots, "GRACE_DAYS", snapshots.GRACE_DAYS - RACE_NOW.days)
    monkeypatch.setattr(snapshots, "FIRST_RUN_AFTER_S", 0.0)
    passes = sample("salesloop_api_coaching_snapshot_pass_seconds_count")
    taken, before = (
        sample("salesloop_api_coaching_snapshot_weeks_total", result="taken"),
        await markers(engine),
    )
    failed = sample("salesloop_api_coaching_snapshot_weeks_total", result="failed")

    async def done() -> bool:
        ran = sample("salesloop_api_coaching_snapshot_pass_seconds_count") >= passes + 2
        return ran and all([bool(await snapshot_rows(engine, slug)) for slug in slugs])

    async with api_client(stack), api_client(stack):
        deadline = time.monotonic() + 30
        while not await done():
            assert time.monotonic() < deadline, "the two api processes took no snapshot"
            await asyncio.sleep(0.05)
    # Every tenant week written was taken by one process: none twice, none failed.
    written = await markers(engine) - before
    assert sample("salesloop_api_coaching_snapshot_weeks_total", result="taken") - taken == written
    assert sample("salesloop_api_coaching_snapshot_weeks_total", result="failed") == failed
    for slug in slugs:
        rows = await snapshot_rows(engine, slug)
        assert {(r.week_start, r.rep_id) for r in rows} == {(week, rep) for rep in [*PEERS, "stuck"]}


# --- the pure parts -------------------------------------------------------------------------------


def test_ended_weeks_are_the_mondays_of_weeks_before_the_current_one() -> None:
    monday, sunday = date(2026, 11, 30), date(2026, 12, 6)
    assert ended_weeks(monday, 2) == [date(2026, 11, 16), date(2026, 11, 23)]
    assert ended_weeks(sunday, 1) == [date(2026, 11, 23)]  # the current week has not ended
    assert ended_weeks(sunday + timedelta(days=1), 1) == [monday]


def test_shortfall_is_oriented_as_focus_reads_z() -> None:
    assert shortfall("connect_rate", -0.3) == pytest.approx(0.3)
    assert shortfall("connect_rate", 0.3) == pytest.approx(-0.3)
    assert shortfall("talk_ratio", 0.3) == shortfall("talk_ratio", -0.3) == pytest.approx(0.3)
    assert shortfall("longest_monologue_s", 0.3) == pytest.approx(0.3)
    assert shortfall("connect_rate", None) is None


def week(i: int, priorities: list[str], gaps: dict[str, float | None]) -> WeekCoaching:
    metrics = {m: {"value": 1.0, "peer_median": 1.0, "gap_pct": g, "z": -2.0} for m, g in gaps.items()}
    coaching = {"priorities": [{"metric": m} for m in priorities], "metrics": metrics}
    return WeekCoaching(date(2026, 1, 5) + timedelta(weeks=i), "computed", None, coaching)


def test_progress_follows_each_priority_from_its_first_week() -> None:
    weeks = [
        week(0, [], {"reply_rate": -0.5, "talk_ratio": 0.4}),
        week(1, ["reply_rate"], {"reply_rate": -0.5, "talk_ratio": 0.4}),
        week(2, ["talk_ratio", "reply_rate"], {"reply_rate": -0.05, "talk_ratio": 0.4}),
        week(3, [], {"reply_rate": -0.2, "talk_ratio": -0.05}),
        week(4, [], {"reply_rate": 0.01, "talk_ratio": None}),
        week(5, [], {"reply_rate": -0.099, "talk_ratio": 0.3}),
    ]
    reply, talk = progress(weeks)
    assert (reply.metric, reply.since, reply.weeks_as_priority) == ("reply_rate", weeks[1].week_start, 2)
    assert [w.priority for w in reply.weeks] == [True, True, False, False, False]
    assert (reply.gap_pct_then, reply.gap_pct_now, reply.closed) == (-0.5, -0.099, True)
    assert reply.closed_since == weeks[4].week_start  # week 3 fell back; closed again since week 4
    assert (talk.since, talk.closed, talk.closed_since) == (weeks[2].week_start, False, None)
    assert [w.gap_pct for w in talk.weeks] == [0.4, -0.05, None, 0.3]
    unknown = progress([week(0, ["win_rate"], {"win_rate": None})])
    assert (unknown[0].closed, unknown[0].closed_since) == (None, None)
    absent = WeekCoaching(date(2026, 1, 5), "snapshot", datetime.now(UTC), None)
    assert progress([absent]) == []


async def test_a_week_is_due_two_days_after_it_ended_in_the_tenants_own_time(
    engine: AsyncEngine, tenants: TenantFactory, snapshotters: list[Snapshotter]
) -> None:
    utc, la = await tenants.create(), await tenants.create(timezone="America/Los_Angeles")
    await backdate(engine, utc.slug, la.slug)
    pool = snapshotters[0].pool

    async def due(now: datetime) -> dict[str, date]:
        found = await history_queries.due_weeks(pool, now, snapshots.GRACE_DAYS, 10_000)
        return {d.tenant: d.week_start for d in found if d.tenant in (utc.slug, la.slug)}

    ended = last_ended_monday(datetime.now(UTC).date())  # a Monday whose week ended
    wednesday = datetime.combine(ended + timedelta(days=9), datetime.min.time(), UTC)
    # Wednesday 05:00 UTC is Tuesday evening in Los Angeles: its week ended less than two days ago.
    assert await due(wednesday + timedelta(hours=5)) == {utc.slug: ended, la.slug: ended - timedelta(weeks=1)}
    assert await due(wednesday + timedelta(hours=8)) == {utc.slug: ended, la.slug: ended}
    # A week that ended before the tenant existed is nobody's snapshot.
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE tenants SET created_at = :at WHERE slug = :s"), {"at": wednesday, "s": la.slug}
        )
    assert await due(wednesday + timedelta(hours=8)) == {utc.slug: ended}
