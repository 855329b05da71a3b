"""`salesloop report` and `salesloop demo` as a user runs them, against the session's services."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.demo.report import SECTIONS
from devstack.embedded import free_port
from services.core.tenancy import create_key
from tests.conftest import Services
from tests.demo.conftest import LoadedDemo
from tests.factories import TenantFactory


async def salesloop(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with only `env` (no dev.env of whoever runs the tests leaks in)."""
    command = [sys.executable, "-m", "services.cli", *args, "--env-file", str(tmp_path / "absent.env")]
    full_env = {"PATH": os.environ.get("PATH", ""), "COLUMNS": "160", **env}
    return await asyncio.to_thread(
        subprocess.run, command, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def report_args(loaded: LoadedDemo) -> list[str]:
    last = loaded.org.last_day
    start = last - timedelta(days=89)
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
        assert rep_id in coaching
        assert metric in coaching
    hiring = out[positions[1] : positions[2]]
    first_trait = min(
        ("coachability", "curiosity", "prior_success", "intelligence", "work_ethic"), key=hiring.index
    )
    assert first_trait == "coachability"
    ramp = out[positions[2] : positions[3]]
    assert f"{loaded.org.plant.slow_cohort:%Y-%m}" in ramp
    assert f"{loaded.org.plant.fast_cohort:%Y-%m}" in ramp
    channels = out[positions[3] :]
    best, *_, worst = loaded.org.plant.channels_by_quality
    assert channels.index(best) < channels.index(worst)


async def test_report_names_the_scopes_a_key_lacks(
    services: Services, loaded: LoadedDemo, engine: AsyncEngine, tmp_path: Path
) -> None:
    key = await create_key(engine, loaded.tenant.slug, ["metrics:read"])
    env = {"SALESLOOP_API_URL": services.api_url, "SALESLOOP_API_KEY": key}
    done = await salesloop(*report_args(loaded), env=env, tmp_path=tmp_path)
    assert done.returncode == 1
    for scope in ("coaching:read", "hiring:read", "training:read", "demand:read"):
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
