"""The demo's pipeline through the real services: the planted staller and the under-covered quarter
are what GET /v1/pipeline/* and the report's pipeline section say, computed here from the events.

Shares the session's loaded demo organisation with tests/demo/test_pipeline.py: no load of its own."""

from __future__ import annotations

import io
from datetime import date, datetime

import httpx
import pytest
from rich.console import Console

from devstack.demo import pipeline, report_pipeline
from tests.conftest import Services
from tests.demo import reference
from tests.demo.conftest import LoadedDemo, get


def whole(loaded: LoadedDemo) -> dict[str, str]:
    return {"from": loaded.org.start.isoformat(), "to": loaded.org.last_day.isoformat()}


def quarter(label: str) -> tuple[date, date]:
    q = pipeline.Quarter(int(label[:4]), int(label[-1]))
    return q.first, q.last


async def test_the_stallers_deals_wait_in_their_stage(api: httpx.AsyncClient, loaded: LoadedDemo) -> None:
    plant = pipeline.plant(loaded.org)
    stage = plant.stall_stage
    team = {s["stage"]: s for s in (await get(api, "/v1/pipeline/stages", **whole(loaded)))["stages"]}
    mine = await get(api, "/v1/pipeline/stages", rep_id=plant.staller, **whole(loaded))
    assert [s["stage"] for s in mine["stages"]][: len(pipeline.STAGES)] == [n for n, _ in pipeline.STAGES]
    his = {s["stage"]: s for s in mine["stages"]}[stage]
    completed = [
        s.days for s in reference.stays(loaded.events) if s.rep_id == plant.staller and s.stage == stage
    ]
    want = reference.p90(d for d in completed if d is not None)
    assert his["p90_days_in_stage"] == pytest.approx(want)
    assert his["p90_days_in_stage"] > 2.5 * team[stage]["p90_days_in_stage"]
    # The report's slow stages put him first, far ahead of any other rep and stage.
    others = {
        r.rep_id: (await get(api, "/v1/pipeline/stages", rep_id=r.rep_id, **whole(loaded)))
        for r in loaded.org.reps
    }
    (rep, slowest, p90, team_p90), *rest = report_pipeline.slow_stages(
        {"stages": list(team.values())}, others
    )
    assert (rep, slowest) == (plant.staller, stage)
    assert p90 == pytest.approx(want)
    assert all(p90 / team_p90 > 1.5 * mine / theirs for _, _, mine, theirs in rest), rest


async def test_the_stallers_open_deals_are_stale(api: httpx.AsyncClient, loaded: LoadedDemo) -> None:
    """His deals still in the stage longer than the stage's p90 (over every rep's completed stays) are
    listed as stale for it, and they are most of the deals stale for that reason in that stage."""
    plant = pipeline.plant(loaded.org)
    stays = reference.stays(loaded.events)
    p90 = reference.p90(s.days for s in stays if s.stage == plant.stall_stage and s.days is not None)
    open_ids = set(reference.open_deals(loaded.events))
    stalled = {
        s.deal_id: s
        for s in stays
        if s.left is None
        and s.rep_id == plant.staller
        and s.stage == plant.stall_stage
        and s.deal_id in open_ids
    }
    body = await get(api, "/v1/pipeline/deals", status="stale", limit="1000")
    listed = {d["deal_id"]: d for d in body["deals"]}
    as_of = datetime.fromisoformat(body["as_of"])
    over = set()
    for deal_id, stay in stalled.items():
        days = (as_of - stay.entered).total_seconds() / 86_400
        if days > p90 + 0.01:
            over.add(deal_id)
            got = listed[deal_id]
            assert got["rep_id"] == plant.staller
            assert "days_in_stage_over_p90" in got["reasons"]
            assert got["days_in_stage"] == pytest.approx(days, abs=0.01)
    assert len(over) >= 5
    everyone = {
        d["deal_id"]
        for d in body["deals"]
        if d["stage"] == plant.stall_stage and "days_in_stage_over_p90" in d["reasons"]
    }
    assert over <= everyone
    assert len(over) > len(everyone) / 2


async def test_the_next_quarter_is_under_covered(api: httpx.AsyncClient, loaded: LoadedDemo) -> None:
    plant = pipeline.plant(loaded.org)
    found = {}
    for label in (plant.current_quarter, plant.next_quarter):
        total = (await get(api, "/v1/pipeline/forecast", period=label))["total"]
        assert total["coverage"] == pytest.approx(
            reference.coverage(loaded.org, loaded.events, *quarter(label))
        )
        found[label] = total["coverage"]
    assert found[plant.current_quarter] >= 1 > 0.7 > found[plant.next_quarter]
    # Some deals slipped from the current quarter: their close dates were pushed out of it.
    slipped = await get(api, "/v1/pipeline/deals", status="slipped", period=plant.current_quarter)
    assert slipped["count"] > 0


async def test_the_report_shows_the_pipeline_findings(services: Services, loaded: LoadedDemo) -> None:
    plant = pipeline.plant(loaded.org)
    data = await report_pipeline.fetch(
        services.api_url, loaded.tenant.api_key, whole(loaded), loaded.org.last_day
    )
    out = io.StringIO()
    console = Console(file=out, width=200)
    for renderable in report_pipeline.render(data):
        console.print(renderable)
    text = out.getvalue()
    positions = [text.index(title) for title in report_pipeline.TITLES]
    assert positions == sorted(positions)
    slow = text[positions[1] : positions[2]]
    (row,) = [line for line in slow.splitlines() if f" {plant.staller} " in line]
    assert plant.stall_stage in row
    forecast = text[positions[2] : positions[3]]
    rows = {line.split("│")[1].strip(): line for line in forecast.splitlines() if line.startswith("│")}
    coverage = float(rows[plant.next_quarter].split("│")[8])
    want = reference.coverage(loaded.org, loaded.events, *quarter(plant.next_quarter))
    assert coverage == pytest.approx(want, abs=0.005)
    assert report_pipeline.problems(data) == []
