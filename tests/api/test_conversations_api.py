"""Conversation reads (SPEC 5.7) against analyses written as the conversation fold stores them: one
call as stored, and per-rep and team means worked out here from the calls themselves."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.aggregator import conversation as analysis
from services.api.kit.conversations import REP_METRICS
from services.core.models.conversations import CALL_METRICS, TACTICS
from services.core.tenancy import create_key
from tests.api.factories import AnalysedCall, ConversationFactory, RollupFactory, bearer
from tests.factories import TenantCtx, TenantFactory

OCT = {"from": "2026-10-01", "to": "2026-10-30"}
AS_OF = datetime(2026, 10, 31, 9, 30, tzinfo=UTC)
Get = Callable[..., Awaitable[Any]]


def metrics(
    share: float, monologue: float, patience: float | None, questions: int, **more: Any
) -> dict[str, Any]:
    return {
        "rep_talk_share": share,
        "longest_monologue_s": monologue,
        "longest_story_s": 40.0,
        "interactivity": 3.5,
        "patience_s": patience,
        "rep_questions": questions,
        "buyer_questions": 2,
        "open_questions": questions // 2,
        **more,
    }


def moment(tactic: str, start_s: float, speaker: str = "rep", text: str | None = "…") -> dict[str, Any]:
    return {"tactic": tactic, "speaker": speaker, "start_s": start_s, "text": text}


def oct_(day: int) -> date:
    return date(2026, 10, day)


def at(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, 15, tzinfo=UTC)


def call(event_id: str, rep: str | None, d: date | None, **kw: Any) -> AnalysedCall:
    return AnalysedCall(event_id, rep, d, occurred_at=None if d is None else at(d), **kw)


@dataclass(frozen=True)
class Rep:
    team: str | None
    active: bool = True
    timezone: str = "UTC"


REPS = {
    "ana": Rep("east"),
    "ben": Rep("east"),
    "cy": Rep("west", active=False),  # left, with calls in the window: still listed
    "dee": Rep("west", active=False),  # left, no calls: not listed
    "eve": Rep("west"),  # no calls: listed, nothing to average
    "tok": Rep("east", timezone="Asia/Tokyo"),
}
FIRST = call(
    "c1",
    "ana",
    oct_(2),
    words=812,
    contact_id="contact-1",
    duration_s=612.5,
    metrics=metrics(0.42, 75.5, 0.8, 7),
    # stored out of order: the answer sorts by start_s
    moments=[
        moment("thats_right", 300.0, "buyer", "That's right."),
        moment("label", 12.5, text="It sounds like…"),
    ],
)
CALLS = [
    FIRST,
    call("c2", "ana", oct_(15), metrics=metrics(0.61, 120.0, None, 3), moments=[moment("mirror", 40.0)]),
    call(
        "c3",
        "ana",
        oct_(30),
        metrics=metrics(0.5, 30.25, 1.5, 9),
        moments=[
            moment("calibrated_question", 5.0),
            moment("calibrated_question", 9.0),
            moment("label", 20.0),
        ],
    ),
    call("empty", "ana", oct_(20), words=0),  # no segments: not analysed
    call("before", "ana", date(2026, 9, 30), metrics=metrics(0.9, 500.0, 4.0, 50)),
    call("after", "ana", date(2026, 10, 31), metrics=metrics(0.9, 500.0, 4.0, 50)),
    call("b1", "ben", oct_(3), metrics=metrics(0.3, 60.0, 0.5, 12), moments=[moment("summary", 100.0)]),
    call(
        "b2",
        "ben",
        oct_(4),
        metrics=metrics(0.35, 45.0, 0.25, 14),
        moments=[moment("youre_right", 7.0, "buyer")],
    ),
    call(
        "y1", "cy", oct_(10), metrics=metrics(0.7, 200.0, 2.0, 1), moments=[moment("accusation_audit", 1.0)]
    ),
    call("orphan", None, None, metrics=metrics(0.5, 10.0, 1.0, 2)),  # its call.completed not folded yet
    call(
        "erased",
        "ben",
        oct_(5),
        metrics=metrics(0.4, 50.0, 1.0, 4),
        moments=[moment("no_oriented_question", 3.0, text=None)],
        erased_at=datetime(2026, 11, 1, tzinfo=UTC),
    ),
]


@pytest.fixture(scope="module")
async def org(tenants: TenantFactory, engine: AsyncEngine) -> TenantCtx:
    t = await tenants.create()
    rollups, talks = RollupFactory(engine), ConversationFactory(engine)
    for rep_id, rep in REPS.items():
        await rollups.rep(t.slug, rep_id, team=rep.team, active=rep.active, timezone=rep.timezone)
    await talks.add(t.slug, *CALLS)
    await rollups.watermark(t.slug, AS_OF)
    return t


@pytest.fixture(scope="module")
async def api(client: httpx.AsyncClient, org: TenantCtx) -> Get:
    async def get(path: str, expect: int = 200, **params: Any) -> Any:
        r = await client.get(path, params=params, headers=bearer(org.api_key))
        assert r.status_code == expect, r.text
        return r.json()

    return get


# --- an independent computation of the per-rep numbers -----------------------------------------


def in_window(c: AnalysedCall, start: date, end: date) -> bool:
    return c.day is not None and start <= c.day <= end and c.words > 0


def expected(rep_id: str, start: date = oct_(1), end: date = oct_(30)) -> tuple[int, dict[str, float | None]]:
    calls = [c for c in CALLS if c.rep_id == rep_id and in_window(c, start, end)]
    out: dict[str, float | None] = {}
    for m in CALL_METRICS:
        values = [float(v) for c in calls if (v := c.metrics.get(m)) is not None]
        out[m] = statistics.fmean(values) if values else None
    n = len(calls)
    questions = sum(int(c.metrics["rep_questions"] or 0) for c in calls)
    out["questions_per_call"] = questions / n if n else None
    for tactic in TACTICS:
        moments = sum(m["tactic"] == tactic for c in calls for m in c.moments)
        out[f"{tactic}_per_call"] = moments / n if n else None
    return n, out


def assert_metrics(got: dict[str, Any], want: dict[str, float | None], where: Any) -> None:
    assert list(got) == list(want), where
    for k, v in want.items():
        assert got[k] == (None if v is None else pytest.approx(v, rel=1e-9)), (where, k, got[k], v)


# --- one call ---------------------------------------------------------------------------------


async def test_a_call_as_analysed(api: Get) -> None:
    body = await api("/v1/conversations/calls/c1")
    assert body == {
        "event_id": "c1",
        "rep_id": "ana",
        "contact_id": "contact-1",
        "occurred_at": "2026-10-02T15:00:00Z",
        "duration_s": 612.5,
        "transcript_event_id": "c1-transcript",
        "as_of": "2026-10-31T09:30:00Z",
        "words": 812,
        "metrics": {**FIRST.metrics},
        "moments": [
            {"tactic": "label", "speaker": "rep", "start_s": 12.5, "text": "It sounds like…"},
            {"tactic": "thats_right", "speaker": "buyer", "start_s": 300.0, "text": "That's right."},
        ],
    }
    assert list(body["metrics"]) == list(CALL_METRICS)


async def test_a_transcript_without_segments_has_no_numbers(api: Get) -> None:
    body = await api("/v1/conversations/calls/empty")
    assert body["words"] == 0
    assert body["metrics"] == dict.fromkeys(CALL_METRICS)
    assert body["moments"] == []


async def test_a_transcript_before_its_call(api: Get) -> None:
    body = await api("/v1/conversations/calls/orphan")
    assert (body["rep_id"], body["occurred_at"], body["metrics"]["rep_questions"]) == (None, None, 2)


async def test_an_erased_call_keeps_its_numbers_not_its_text(api: Get) -> None:
    body = await api("/v1/conversations/calls/erased")
    assert body["contact_id"] is None
    assert body["moments"] == [
        {"tactic": "no_oriented_question", "speaker": "rep", "start_s": 3.0, "text": None}
    ]
    assert body["metrics"]["rep_talk_share"] == 0.4


async def test_an_unknown_call_is_404(api: Get) -> None:
    body = await api("/v1/conversations/calls/nope", expect=404)
    assert body["error"]["code"] == "not_found"


# --- per rep -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rep_id", ["ana", "ben", "cy", "eve"])
async def test_rep_means_are_the_calls_means(api: Get, rep_id: str) -> None:
    body = await api(f"/v1/conversations/reps/{rep_id}", **OCT)
    n, want = expected(rep_id)
    assert (body["rep_id"], body["team"], body["from"], body["to"]) == (
        rep_id,
        REPS[rep_id].team,
        *OCT.values(),
    )
    assert body["as_of"] == "2026-10-31T09:30:00Z"
    assert body["calls_analysed"] == n
    assert_metrics(body["metrics"], want, rep_id)


async def test_ana_by_hand(api: Get) -> None:
    body = await api("/v1/conversations/reps/ana", **OCT)
    # c1, c2, c3 (the empty transcript and the calls of 30 September and 31 October do not count)
    assert body["calls_analysed"] == 3
    m = body["metrics"]
    assert m["rep_talk_share"] == pytest.approx((0.42 + 0.61 + 0.5) / 3)
    assert m["longest_monologue_s"] == pytest.approx((75.5 + 120.0 + 30.25) / 3)
    assert m["patience_s"] == pytest.approx((0.8 + 1.5) / 2)  # c2 has none
    assert m["questions_per_call"] == m["rep_questions"] == pytest.approx((7 + 3 + 9) / 3)
    assert m["label_per_call"] == pytest.approx(2 / 3)
    assert m["calibrated_question_per_call"] == pytest.approx(2 / 3)
    assert m["summary_per_call"] == 0.0


async def test_a_rep_without_calls_has_nulls_not_zeros(api: Get) -> None:
    body = await api("/v1/conversations/reps/eve", **OCT)
    assert body["calls_analysed"] == 0
    assert set(body["metrics"].values()) == {None}


async def test_a_window_of_one_day(api: Get) -> None:
    body = await api("/v1/conversations/reps/ana", window="1d")
    assert body["from"] == body["to"]
    one = await api("/v1/conversations/reps/ana", **{"from": "2026-10-15", "to": "2026-10-15"})
    assert one["calls_analysed"] == 1
    assert one["metrics"]["mirror_per_call"] == 1.0


async def test_default_window_is_the_last_30_full_days_in_the_reps_timezone(
    api: Any, org: TenantCtx, engine: AsyncEngine
) -> None:
    yesterday = (datetime.now(UTC) + timedelta(hours=9)).date() - timedelta(days=1)
    talks = ConversationFactory(engine)
    await talks.add(org.slug, call("t1", "tok", yesterday, metrics=metrics(0.5, 10.0, 1.0, 4)))
    await talks.add(
        org.slug, call("t2", "tok", yesterday + timedelta(days=1), metrics=metrics(0.5, 10.0, 1.0, 4))
    )
    await talks.add(
        org.slug, call("t3", "tok", yesterday - timedelta(days=30), metrics=metrics(0.5, 10.0, 1.0, 4))
    )
    body = await api("/v1/conversations/reps/tok")
    assert body["to"] == str(yesterday)
    assert body["from"] == str(yesterday - timedelta(days=29))
    assert body["calls_analysed"] == 1


async def test_an_unknown_rep_is_404(api: Get) -> None:
    body = await api("/v1/conversations/reps/nobody", expect=404, **OCT)
    assert body["error"]["code"] == "not_found"


# --- the team ----------------------------------------------------------------------------------


async def test_team_view_one_entry_per_rep(api: Get) -> None:
    body = await api("/v1/conversations/team", **OCT)
    assert (body["team"], body["from"], body["to"], body["as_of"]) == (
        None,
        *OCT.values(),
        "2026-10-31T09:30:00Z",
    )
    # every active rep, and cy who left but had calls; not dee
    assert [r["rep_id"] for r in body["reps"]] == ["ana", "ben", "cy", "eve", "tok"]
    for entry in body["reps"]:
        n, want = expected(entry["rep_id"])
        assert (entry["team"], entry["calls_analysed"]) == (REPS[entry["rep_id"]].team, n)
        assert_metrics(entry["metrics"], want, entry["rep_id"])


async def test_team_view_of_one_team(api: Get) -> None:
    west = await api("/v1/conversations/team", team="west", **OCT)
    assert west["team"] == "west"
    assert [r["rep_id"] for r in west["reps"]] == ["cy", "eve"]
    # a team whose reps all left without calls in the window exists, with nobody to list
    quiet = await api("/v1/conversations/team", team="west", **{"from": "2025-01-01", "to": "2025-01-31"})
    assert [r["rep_id"] for r in quiet["reps"]] == ["eve"]
    missing = await api("/v1/conversations/team", expect=404, team="nowhere")
    assert missing["error"]["code"] == "not_found"


async def test_a_tenant_without_reps_sees_an_empty_team(
    client: httpx.AsyncClient, tenants: TenantFactory
) -> None:
    t = await tenants.create()
    r = await client.get("/v1/conversations/team", params=OCT, headers=bearer(t.api_key))
    assert r.status_code == 200, r.text
    assert r.json() == {"team": None, **OCT, "as_of": None, "reps": []}


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/conversations/reps/ana", {"window": "30"}, "window"),
        ("/v1/conversations/reps/ana", {"from": "2026-10-30", "to": "2026-10-01"}, "from"),
        ("/v1/conversations/reps/ana", {"from": "2026-10-01"}, "to"),
        ("/v1/conversations/team", {"team": ""}, "team"),
        ("/v1/conversations/team", {"window": "2000d"}, "window"),
        ("/v1/conversations/calls/" + "x" * 201, {}, "event_id"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(
    api: Any, path: str, params: dict[str, str], field: str
) -> None:
    body = await api(path, expect=422, **params)
    assert any(d["field"].endswith(field) for d in body["error"]["details"]), body


async def test_the_scope(client: httpx.AsyncClient, org: TenantCtx, engine: AsyncEngine) -> None:
    coaching_only = await create_key(engine, org.slug, ["coaching:read", "metrics:read"])
    for path in ("/v1/conversations/calls/c1", "/v1/conversations/reps/ana", "/v1/conversations/team"):
        r = await client.get(path, headers=bearer(coaching_only))
        assert r.status_code == 403, (path, r.text)
    reader = await create_key(engine, org.slug, ["conversations:read"])
    assert (await client.get("/v1/conversations/calls/c1", headers=bearer(reader))).status_code == 200


async def test_the_openapi_document(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert not [name for name in schemas if "__" in name]  # no model name taken twice
    for path, model in [
        ("/v1/conversations/calls/{event_id}", "CallOut"),
        ("/v1/conversations/reps/{rep_id}", "RepConversationsOut"),
        ("/v1/conversations/team", "TeamConversationsOut"),
    ]:
        ok = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].endswith(f"/{model}"), path
        assert schemas[model]["examples"], model
    assert list(schemas["ConversationMetrics"]["properties"]) == list(REP_METRICS)


def test_the_answers_name_what_the_analysis_finds() -> None:
    assert (CALL_METRICS, TACTICS) == (analysis.METRICS, analysis.TACTICS)
