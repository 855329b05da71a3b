"""Every SQL query of the Sales feedback dashboard, expanded as Grafana expands it, runs as the
read-only role Grafana uses and returns the numbers of events sent through the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator.conversation import analyse
from tests.conftest import Services
from tests.deploy import grafana, grafana_sql, traffic
from tests.deploy.tooling import DASHBOARDS
from tests.factories import TenantCtx, TenantFactory

ALPHA_CONNECTS = {"a1": 10, "a2": 10, "a3": 10, "a4": 2}  # of 20 dials each
BETA = "beta's crew"  # a quote in a value: Grafana's quoting must keep the SQL intact
NO_TEAM = "(no team)"
CONVERSATIONS = "Conversations: how each rep talks"
WEEKLY = "Conversations by week: talk share and Voss tactics per call"
PRIORITIES = "Coaching priorities: what to coach each rep on first"
COACHING_WEEKS = "Coaching by week: each rep's gap on its first priority"


def segment(speaker: str, start_s: float, end_s: float, text: str) -> dict[str, Any]:
    return {"speaker": speaker, "start_s": start_s, "end_s": end_s, "text": text}


# Transcripts of some of the connected calls below. A rep who labels (a question, a label the buyer
# confirms, a mirror) ...
LABELLING = [
    segment("rep", 0.0, 4.0, "What's making the forecast so hard to trust right now?"),
    segment("buyer", 4.5, 10.0, "Every rep calls a commit differently, so the number is a guessing game."),
    segment("rep", 11.0, 14.0, "It sounds like nobody trusts the number that goes upstairs."),
    segment("buyer", 14.5, 19.0, "That's right. My CFO asks me about it every week."),
    segment("rep", 20.0, 22.0, "Every week?"),
    segment("buyer", 22.5, 27.0, "Every single Monday, before the leadership meeting."),
]
# ... and one who talks for 75 seconds while the buyer only says "Mhm."
MONOLOGUE = [
    segment("rep", 0.0, 20.0, "Let me walk you through the whole platform first, it will all make sense."),
    segment("buyer", 20.2, 20.8, "Mhm."),
    segment("rep", 21.0, 45.0, "We record every call, score it and show each manager where to coach."),
    segment("buyer", 45.2, 45.8, "Okay."),
    segment("rep", 46.0, 75.0, "The forecast rolls up from the deals, and the setup takes two weeks."),
    segment("buyer", 76.0, 80.0, "How much does all of that cost?"),
    segment("rep", 80.5, 85.0, "It depends on the number of seats you need."),
]
# call id -> (transcript, sent on the call itself or later as a call.transcribed naming it)
TRANSCRIPTS: dict[str, tuple[list[dict[str, Any]], bool]] = {
    **{f"a1-call-{i}": (LABELLING, True) for i in range(10)},
    **{f"a2-call-{i}": (MONOLOGUE, True) for i in range(10)},
    **{f"a3-call-{i}": (LABELLING, False) for i in range(10)},
    "b1-call-0": (MONOLOGUE, False),
}


# Coaching snapshots of the last three ended weeks, as the api writes them (services/api/coaching/
# snapshots.py, whose own tests pin what goes in): per rep its team, peer group, the gap_pct of each
# metric week by week, and the priorities of each week as (metric, impact_monthly).
SNAPSHOT_GAPS: dict[str, dict[str, list[float]]] = {
    "a1": {},
    "a2": {"talk_ratio": [0.3, 0.3, 0.25]},
    "a3": {"win_rate": [-0.5, -0.05, 0.0]},
    "a4": {"connect_rate": [-0.8, -0.7, -0.6], "meeting_rate": [-0.2, -0.2, -0.3]},
    "b1": {"meeting_rate": [-0.5, -0.4, -0.3]},
}
SNAPSHOT_PRIORITIES: dict[str, list[list[tuple[str, float | None]]]] = {
    "a1": [[], [], []],
    "a2": [[], [], [("talk_ratio", None)]],
    "a3": [[("win_rate", 300.0)], [], []],  # closed since: in no current panel
    "a4": [
        [("connect_rate", 900.0)],
        [("connect_rate", 800.0)],
        [("connect_rate", 700.0), ("meeting_rate", 100.0)],
    ],
    "b1": [[], [], [("meeting_rate", 2000.0)]],
}


def snapshot_weeks(today: date) -> list[date]:
    """The Mondays of the three weeks that ended before `today`, oldest first: weeks before the
    tenant was created, which the session's api processes never snapshot themselves."""
    last = today - timedelta(days=today.weekday() + 7)
    return [last - timedelta(weeks=2 - i) for i in range(3)]


async def write_snapshots(engine: AsyncEngine, tenant: str, today: date) -> None:
    async with engine.begin() as conn:
        for i, monday in enumerate(snapshot_weeks(today)):
            await conn.execute(
                text(
                    "INSERT INTO coaching_snapshot_weeks (tenant, week_start, window_start, window_end, "
                    "reps) VALUES (:tenant, :monday, :start, :end, 5)"
                ),
                {
                    "tenant": tenant,
                    "monday": monday,
                    "start": monday - timedelta(days=21),
                    "end": monday + timedelta(days=6),
                },
            )
            for rep, gaps in SNAPSHOT_GAPS.items():
                metrics = {
                    m: {"value": 1.0 + g[i], "peer_median": 1.0, "gap_pct": g[i], "z": -2.0}
                    for m, g in gaps.items()
                }
                priorities = [
                    {
                        "metric": m,
                        "value": 1.0 + gaps[m][i],
                        "peer_median": 1.0,
                        "z": -2.0,
                        "gap_pct": gaps[m][i],
                        "impact_monthly": impact,
                    }
                    for m, impact in SNAPSHOT_PRIORITIES[rep][i]
                ]
                await conn.execute(
                    text(
                        "INSERT INTO coaching_snapshots (tenant, week_start, rep_id, team, peer_group, "
                        "focus, priorities, metrics) VALUES (:tenant, :monday, :rep, :team, :group, "
                        ":focus, CAST(:priorities AS jsonb), CAST(:metrics AS jsonb))"
                    ),
                    {
                        "tenant": tenant,
                        "monday": monday,
                        "rep": rep,
                        "team": BETA if rep == "b1" else "alpha",
                        "group": "tenure_month_1" if rep == "b1" else "tenant",
                        "focus": [p["metric"] for p in priorities],
                        "priorities": orjson.dumps(priorities).decode(),
                        "metrics": orjson.dumps(metrics).decode(),
                    },
                )


@dataclass(frozen=True)
class Org:
    tenant: TenantCtx
    today: date
    alpha_hired: date
    beta_hired: date
    events: int


def org_events(now: datetime, alpha_hired: date) -> list[dict[str, Any]]:
    recent = now - timedelta(days=2)
    hired = datetime.combine(alpha_hired, datetime.min.time(), UTC) + timedelta(hours=12)
    out: list[dict[str, Any]] = []
    for rep, connects in ALPHA_CONNECTS.items():
        out += [traffic.call(f"{rep}-call-{i}", recent, rep, connected=i < connects) for i in range(20)]
    out += [traffic.event(f"a1-meeting-{i}", "meeting.booked", recent, "a1") for i in range(3)]
    out += [
        traffic.event(
            "a1-won-1", "deal.won", hired + timedelta(days=10), "a1", amount="1000", channel="organic_search"
        ),
        traffic.event("a1-won-2", "deal.won", hired + timedelta(days=45), "a1", amount="1000"),
        traffic.event("a2-lost-1", "deal.lost", recent, "a2"),
    ]
    out += [traffic.call(f"b1-call-{i}", recent, "b1", connected=i < 3) for i in range(5)]
    out += [
        traffic.event("b1-won-1", "deal.won", now - timedelta(days=3), "b1", amount="500", channel="referral")
    ]
    out += [traffic.call("u1-call-0", recent, "u1", connected=False)]  # registers u1, without a team
    for e in out:
        if e["event_id"] in TRANSCRIPTS and TRANSCRIPTS[e["event_id"]][1]:
            e["transcript"] = TRANSCRIPTS[e["event_id"]][0]
    out += [
        traffic.event(
            f"{call_id}-transcript",
            "call.transcribed",
            recent + timedelta(minutes=10),
            call_id.split("-")[0],
            call_event_id=call_id,
            transcript=transcript,
        )
        for call_id, (transcript, inline) in TRANSCRIPTS.items()
        if not inline
    ]
    leads = [
        ("organic_search", "c1"),
        ("organic_search", "c2"),
        ("organic_search", "c3"),
        ("paid_search", "c4"),
    ]
    out += [
        traffic.event(
            f"lead-{contact}", "lead.created", now - timedelta(days=5), channel=channel, contact_id=contact
        )
        for channel, contact in leads
    ]
    return out


@pytest.fixture(scope="module")
async def org(services: Services, tenants: TenantFactory, engine: AsyncEngine) -> Org:
    t = await tenants.create(prefix="graf")
    now = datetime.now(UTC)
    today = now.date()
    alpha_hired, beta_hired = today - timedelta(days=100), today - timedelta(days=40)
    events = org_events(now, alpha_hired)
    async with (
        httpx.AsyncClient(base_url=services.api_url, timeout=10) as api,
        httpx.AsyncClient(base_url=services.ingest_url, timeout=10) as ingest,
    ):
        for rep in ALPHA_CONNECTS:
            await traffic.put_rep(api, t, rep, name=rep.upper(), team="alpha", hired_at=str(alpha_hired))
        await traffic.put_rep(api, t, "b1", name="B1", team=BETA, hired_at=str(beta_hired))
        await traffic.post_events(ingest, t, events)
    await traffic.wait_folded(engine, t.slug, len(events))
    await write_snapshots(engine, t.slug, today)
    return Org(t, today, alpha_hired, beta_hired, len(events))


def dashboard() -> grafana.Dashboard:
    return grafana.load(DASHBOARDS / "sales-feedback.json")


def time_range(org: Org) -> tuple[datetime, datetime]:
    """The dashboard's time range: from 120 days before the organisation's day until now."""
    return datetime.combine(org.today - timedelta(days=120), datetime.min.time(), UTC), datetime.now(UTC)


async def run(
    reader: asyncpg.Connection, sql: str, org: Org, **values: grafana.VariableValue
) -> list[asyncpg.Record]:
    return await grafana_sql.fetch(reader, dashboard(), sql, values, *time_range(org))


async def panel_rows(
    reader: asyncpg.Connection, org: Org, teams: list[str]
) -> dict[str, list[asyncpg.Record]]:
    values: dict[str, grafana.VariableValue] = {"tenant": org.tenant.slug, "team": teams, "coach_gap": "0.2"}
    return await grafana_sql.panel_rows(reader, dashboard(), values, *time_range(org))


async def test_variable_queries_list_tenants_and_teams(reader: asyncpg.Connection, org: Org) -> None:
    variables = grafana.variables(dashboard())
    assert {"tenant", "team"} <= set(variables)
    tenants = await run(reader, variables["tenant"]["query"], org)
    assert org.tenant.slug in [r[0] for r in tenants]
    teams = await run(reader, variables["team"]["query"], org, tenant=org.tenant.slug)
    assert [r[0] for r in teams] == [NO_TEAM, "alpha", BETA]


async def test_every_panel_returns_the_pipeline_numbers(reader: asyncpg.Connection, org: Org) -> None:
    every_team = [NO_TEAM, "alpha", BETA]  # "All": every value of the team query
    rows = await panel_rows(reader, org, every_team)
    assert all(rows.values()), [title for title, found in rows.items() if not found]

    (fresh,) = rows["Data as of"]
    assert fresh["events_folded"] == org.events

    funnel = {r["team"]: r for r in rows["Team funnel: dials, connects, meetings, deals won"]}
    assert set(funnel) == set(every_team)
    alpha = funnel["alpha"]
    assert (alpha["dials"], alpha["connects"], alpha["meetings_booked"], alpha["deals_won"]) == (80, 32, 3, 2)
    assert alpha["connect_rate"] == Decimal("0.4")
    assert (funnel[BETA]["dials"], funnel[BETA]["connects"], funnel[BETA]["deals_won"]) == (5, 3, 1)
    assert funnel[NO_TEAM]["meeting_rate"] is None  # no connects: a rate without denominator is null

    board = {r["rep_id"]: r for r in rows["Rep leaderboard and coaching flags"]}
    assert set(board) == {"a1", "a2", "a3", "a4", "b1", "u1"}
    assert board["a1"]["rank"] == 1
    assert board["a1"]["revenue_won"] == Decimal(2000)
    assert board["a4"]["connect_rate"] == Decimal("0.1")
    assert board["a4"]["team_median_connect_rate"] == Decimal("0.5")
    assert {rep for rep, r in board.items() if r["coach_connect_rate"]} == {"a4"}
    assert board["b1"]["team_median_connect_rate"] is None  # under 20 dials: no peer comparison
    assert (board["a1"]["win_rate"], board["a2"]["win_rate"], board["a3"]["win_rate"]) == (1, 0, None)
    assert board["a1"]["meeting_rate"] == Decimal("0.3")

    channels = {r["channel"]: r for r in rows["Channel quality"]}
    organic = channels["organic_search"]
    assert (organic["leads"], organic["deals_won"], organic["revenue_won"]) == (3, 1, Decimal(1000))
    assert round(organic["revenue_per_lead"], 2) == Decimal("333.33")
    assert channels["referral"]["revenue_per_lead"] is None
    assert channels["paid_search"]["leads"] == 1

    ramp = {
        (r["cohort"], r["month_since_hire"]): r
        for r in rows["Ramp by hire cohort: revenue per rep by month since hire"]
    }
    alpha_cohort, beta_cohort = org.alpha_hired.strftime("%Y-%m"), org.beta_hired.strftime("%Y-%m")
    assert ramp[(alpha_cohort, 0)]["reps"] == 4
    assert ramp[(alpha_cohort, 0)]["tenure_month"] == "month 00"
    assert ramp[(alpha_cohort, 0)]["revenue_per_rep"] == Decimal(250)
    assert ramp[(alpha_cohort, 1)]["revenue_per_rep"] == Decimal(250)
    assert ramp[(alpha_cohort, 3)]["revenue_won"] == 0  # the calls, two days ago
    assert ramp[(beta_cohort, 1)]["revenue_per_rep"] == Decimal(500)


async def test_a_team_selection_narrows_every_team_panel(reader: asyncpg.Connection, org: Org) -> None:
    rows = await panel_rows(reader, org, [BETA])
    assert [r["team"] for r in rows["Team funnel: dials, connects, meetings, deals won"]] == [BETA]
    assert [r["rep_id"] for r in rows["Rep leaderboard and coaching flags"]] == ["b1"]
    assert {r["cohort"] for r in rows["Ramp by hire cohort: revenue per rep by month since hire"]} == {
        org.beta_hired.strftime("%Y-%m")
    }
    assert len(rows["Channel quality"]) == 3  # tenant-wide
    assert [r["rep_id"] for r in rows[CONVERSATIONS]] == ["b1"]
    assert [(r["rep_id"], r["metric"]) for r in rows[PRIORITIES]] == [("b1", "meeting_rate")]
    assert {r["metric"] for r in rows[COACHING_WEEKS]} == {"b1 meeting_rate"}
    (week,) = rows[WEEKLY]
    assert (week["calls_analysed"], week["label_per_call"]) == (1, 0)


def expected_conversations(rep_ids: list[str]) -> dict[str, float]:
    """calls, talk share, longest monologue and labels per call of `rep_ids`' transcribed calls, from
    the analysis of each transcript (rounded per call, as the rollups add it)."""
    found = [analyse(t) for call_id, (t, _) in TRANSCRIPTS.items() if call_id.split("-")[0] in rep_ids]

    def mean(metric: str) -> float:
        return sum(round(a.metrics[metric] or 0.0, 6) for a in found) / len(found)

    return {
        "calls_analysed": len(found),
        "rep_talk_share": mean("rep_talk_share"),
        "longest_monologue_s": mean("longest_monologue_s"),
        "label_per_call": sum(m.tactic == "label" for a in found for m in a.moments) / len(found),
    }


async def test_the_conversation_panels_read_the_transcripts_sums(
    reader: asyncpg.Connection, org: Org
) -> None:
    rows = await panel_rows(reader, org, [NO_TEAM, "alpha", BETA])
    table = rows[CONVERSATIONS]
    # Most labels per call first; reps without analysed calls are not listed.
    assert [r["rep_id"] for r in table] == ["a1", "a3", "a2", "b1"]
    for r in table:
        want = expected_conversations([r["rep_id"]])
        assert r["calls_analysed"] == want["calls_analysed"]
        for metric in ("rep_talk_share", "longest_monologue_s", "label_per_call"):
            assert float(r[metric]) == pytest.approx(want[metric], abs=1e-6), (r["rep_id"], metric)
    by_rep = {r["rep_id"]: r for r in table}
    assert by_rep["a2"]["longest_monologue_s"] == 75  # from its start to the end of its last part
    assert by_rep["a1"]["label_per_call"] == 1
    # The median of the reps with at least 10 calls (a1, a2, a3): a2 talks more than twice as long.
    median = expected_conversations(["a1"])["longest_monologue_s"]
    assert median == pytest.approx(4.0)
    assert all(r["median_monologue_s"] == pytest.approx(median) for r in table)
    assert {rep for rep, r in by_rep.items() if r["coach_monologue"]} == {"a2"}  # b1: one call only

    (week,) = rows[WEEKLY]  # every transcript is of a call two days ago
    everyone = expected_conversations(["a1", "a2", "a3", "b1"])
    assert week["calls_analysed"] == everyone["calls_analysed"] == 31
    assert float(week["label_per_call"]) == pytest.approx(20 / 31)
    assert float(week["rep_talk_share"]) == pytest.approx(everyone["rep_talk_share"], abs=1e-6)


async def test_the_coaching_panels_read_the_latest_snapshot_and_the_weeks(
    reader: asyncpg.Connection, org: Org
) -> None:
    rows = await panel_rows(reader, org, [NO_TEAM, "alpha", BETA])
    latest = snapshot_weeks(org.today)[-1]
    # The reps with priorities in the latest week, the one whose first priority is worth most first,
    # those without an impact last; a3's gap of three weeks ago is closed.
    listed = [(r["rep_id"], r["priority"], r["metric"], r["impact_monthly"]) for r in rows[PRIORITIES]]
    assert listed == [
        ("b1", 1, "meeting_rate", 2000),
        ("a4", 1, "connect_rate", 700),
        ("a4", 2, "meeting_rate", 100),
        ("a2", 1, "talk_ratio", None),
    ]
    by_metric = {(r["rep_id"], r["metric"]): r for r in rows[PRIORITIES]}
    assert by_metric[("b1", "meeting_rate")]["peer_group"] == "tenure_month_1"
    assert by_metric[("b1", "meeting_rate")]["team"] == BETA
    assert by_metric[("a4", "connect_rate")]["gap_pct"] == Decimal("-0.6")
    assert {r["week_start"] for r in rows[PRIORITIES]} == {latest}

    # Week by week, each rep's gap on its first priority now (a4's connect rate, not its meeting rate).
    series: dict[str, list[tuple[date, Decimal]]] = {}
    for r in rows[COACHING_WEEKS]:
        series.setdefault(r["metric"], []).append((r["time"].date(), r["gap_pct"]))
    weeks = snapshot_weeks(org.today)
    assert series == {
        name: list(zip(weeks, (Decimal(str(g)) for g in SNAPSHOT_GAPS[rep][metric]), strict=True))
        for name, (rep, metric) in {
            "a2 talk_ratio": ("a2", "talk_ratio"),
            "a4 connect_rate": ("a4", "connect_rate"),
            "b1 meeting_rate": ("b1", "meeting_rate"),
        }.items()
    }


@pytest.mark.parametrize(
    "query",
    [
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM tenant_secrets",
        "SELECT count(*) FROM api_keys",
        "SELECT count(*) FROM rep_aliases",
        "SELECT count(*) FROM consumer_offsets",
        "SELECT count(*) FROM call_analyses",
        "DELETE FROM coaching_snapshots",
        "SELECT aliases FROM reps",
        "UPDATE rollup_rep_daily SET events = 0",
        "DELETE FROM tenants",
    ],
)
async def test_the_role_reads_nothing_but_the_rollups(reader: asyncpg.Connection, query: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await reader.fetch(query)
