"""`salesloop report` and `salesloop demo` as a user runs them, against the session's services."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.demo import billing, report_economics
from devstack.demo.report import SECTIONS
from devstack.embedded import free_port
from services.core.tenancy import create_key
from tests.conftest import Services
from tests.demo import reference
from tests.demo.conftest import LoadedDemo
from tests.factories import TenantFactory


async def salesloop(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with only `env` (no dev.env of whoever runs the tests leaks in)."""
    command = [sys.executable, "-m", "services.cli", *args, "--env-file", str(tmp_path / "absent.env")]
    full_env = {"PATH": os.environ.get("PATH", ""), "COLUMNS": "160", **env}
    return await asyncio.to_thread(
        subprocess.run, command, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def window_of(loaded: LoadedDemo) -> tuple[date, date]:
    last = loaded.org.last_day
    return last - timedelta(days=89), last


def report_args(loaded: LoadedDemo) -> list[str]:
    start, last = window_of(loaded)
    return ["report", "--tenant", loaded.tenant.slug, "--from", start.isoformat(), "--to", last.isoformat()]


async def test_report_shows_every_section_and_the_planted_findings(
    services: Services, loaded: LoadedDemo, tmp_path: Path
) -> None:
    env = {"SALESLOOP_API_URL": services.api_url, "SALESLOOP_API_KEY": loaded.tenant.api_key}
    done = await salesloop(*report_args(loaded), env=env, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    positions = [out.index(title) for title in SECTIONS]
    assert positions == sorted(positions)
    assert loaded.tenant.slug in out
    coaching = out[positions[0] : positions[1]]
    for rep_id, metric in loaded.org.plant.gaps.items():
        # The planted gap is the rep's first priority, with its impact and the weeks' trend.
        (first,) = [line for line in coaching.splitlines() if f" {rep_id} " in line]
        assert metric in first
        assert "->" in first, first
    hiring = out[positions[1] : positions[2]]
    first_trait = min(
        ("coachability", "curiosity", "prior_success", "intelligence", "work_ethic"), key=hiring.index
    )
    assert first_trait == "coachability"
    ramp = out[positions[2] : positions[3]]
    assert f"{loaded.org.plant.slow_cohort:%Y-%m}" in ramp
    assert f"{loaded.org.plant.fast_cohort:%Y-%m}" in ramp
    channels = out[positions[3] : positions[4]]
    best, *_, worst = loaded.org.plant.channels_by_quality
    assert channels.index(best) < channels.index(worst)
    rows = conversation_rows(out[positions[4] :])
    plant = loaded.org.plant
    assert next(iter(rows)) == plant.labeller  # the most labels per call come first
    assert rows[plant.monologuer]["labels"] == "0.0"
    monologues = {rep: float(row["monologue"].removesuffix(" s")) for rep, row in rows.items()}
    assert max(monologues, key=lambda rep: monologues[rep]) == plant.monologuer
    shares = {rep: float(row["talk share"].removesuffix("%")) for rep, row in rows.items()}
    assert max(shares, key=lambda rep: shares[rep]) == plant.monologuer
    expected = reference.conversations(loaded.events, reference.Window(*window_of(loaded)))
    for rep_id, row in rows.items():
        assert int(row["calls"]) == expected[rep_id]["calls_analysed"]
        assert row["labels"] == f"{expected[rep_id]['label_per_call']:.1f}"
    assert_the_economics_show_the_plant(loaded, out[out.index(report_economics.TITLES[0]) :])


def assert_the_economics_show_the_plant(loaded: LoadedDemo, section: str) -> None:
    """The channels fastest payback first, the planted ones first and last; the lights of the window.
    (Premature scaling compares today's headcount with a quarter ago: it depends on the day the test
    runs, and test_billing.py checks it at the demo's end.)"""
    plant = billing.plant(loaded.org)
    titles = [section.index(title) for title in report_economics.TITLES]
    assert titles == sorted(titles)
    channels = section[titles[1] : titles[2]]
    names = [c.name for c in loaded.org.channels]
    order = sorted(names, key=channels.index)
    assert (order[0], order[-1]) == (plant.fast_payback, plant.never_pays_back)
    lights = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in section[titles[2] :].splitlines()
        if line.startswith("│")
    }
    assert (lights["product/market"], lights["go-to-market"]) == ("red", "green"), lights


def conversation_rows(section: str) -> dict[str, dict[str, str]]:
    """The Conversations table's rows by rep id, in their order: {column title: cell text}."""
    table = section.split("└", 1)[0]  # the first table: the pipeline section's follow
    lines = [line for line in table.splitlines() if line.startswith(("┃", "│"))]
    header = [cell.strip() for cell in lines[0].strip("┃").split("┃")]
    rows = {}
    for line in lines[1:]:
        cells = dict(zip(header, (cell.strip() for cell in line.strip("│").split("│")), strict=True))
        if cells["rep"] and cells["rep"] != "median":
            rows[cells["rep"]] = cells
    return rows


async def test_report_names_the_scopes_a_key_lacks(
    services: Services, loaded: LoadedDemo, engine: AsyncEngine, tmp_path: Path
) -> None:
    key = await create_key(engine, loaded.tenant.slug, ["metrics:read"])
    env = {"SALESLOOP_API_URL": services.api_url, "SALESLOOP_API_KEY": key}
    done = await salesloop(*report_args(loaded), env=env, tmp_path=tmp_path)
    assert done.returncode == 1
    for scope in (
        "coaching:read",
        "hiring:read",
        "training:read",
        "demand:read",
        "conversations:read",
        "economics:read",
    ):
        assert scope in done.stderr
    assert "not available" in done.stdout


async def test_report_says_when_the_api_cannot_be_used(services: Services, tmp_path: Path) -> None:
    unreachable = {"SALESLOOP_API_URL": f"http://127.0.0.1:{free_port()}", "SALESLOOP_API_KEY": "sl_x"}
    done = await salesloop("report", env=unreachable, tmp_path=tmp_path)
    assert done.returncode == 1
    assert "cannot reach the API" in done.stderr
    assert "Traceback" not in done.stderr

    refused = {"SALESLOOP_API_URL": services.api_url, "SALESLOOP_API_KEY": "sl_000000000000_not-a-key"}
    done = await salesloop("report", env=refused, tmp_path=tmp_path)
    assert done.returncode == 1
    assert "refused the key (401)" in done.stderr

    done = await salesloop("report", env={}, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "SALESLOOP_API_URL" in done.stderr


async def test_demo_stops_at_once_when_the_ingest_refuses_its_credentials(
    services: Services, tenants: TenantFactory, tmp_path: Path
) -> None:
    tenant = await tenants.create(prefix="demo-cli")
    env = {
        "SALESLOOP_INGEST_URL": services.ingest_url,
        "SALESLOOP_API_URL": services.api_url,
        "SALESLOOP_INGEST_KEY": "sl_000000000000_not-a-key",
        "SALESLOOP_API_KEY": tenant.api_key,
    }
    done = await salesloop(
        "demo", "--tenant", tenant.slug, "--reps", "12", "--days", "90", env=env, tmp_path=tmp_path
    )
    assert done.returncode == 1
    assert "refused the credentials (401)" in done.stderr
    assert "Traceback" not in done.stderr

    done = await salesloop("demo", env={}, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "SALESLOOP_INGEST_URL" in done.stderr
