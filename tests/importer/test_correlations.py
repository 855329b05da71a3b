"""Trait correlations (SPEC 5.3) over an imported history: a twelve-rep team's HubSpot deals export,
owners by HubSpot owner id, scorecards put by the API. Pearson r, its p-value and 95 % interval and
Spearman rho per trait equal scipy's over the outcomes an independent reading of the same file gives."""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from scipy import stats
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Stack
from tests.factories import TenantFactory
from tests.importer.live import run_import
from tests.support import wait_folded
from tests.system.reference import Org, rep_metrics

FROM, TO = date(2026, 9, 1), date(2026, 11, 30)
REPS = {f"r-{i:02d}": str(61_000_000 + i) for i in range(1, 13)}  # rep -> HubSpot owner id
QUOTAS = {rep: Decimal(8_000 + 1_000 * i) for i, rep in enumerate(REPS)}
ORG = Org(reps=dict.fromkeys(REPS, "UTC"), teams=dict.fromkeys(REPS, "west"), quotas=QUOTAS)
TRAITS = ("coachability", "curiosity", "prior_success", "intelligence", "work_ethic", "grit")
HEADER = ["Record ID", "Deal Name", "Deal Stage", "Amount", "Close Date", "Create Date", "Deal owner"]


def write_export(path: Path, seed: int = 11) -> None:
    """Five deals a rep, won or lost by the end of November, or open; owners by id."""
    rnd = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i, owner in enumerate(REPS.values()):
            for k in range(5):
                created = FROM + timedelta(days=rnd.randrange(60))
                stage = rnd.choice(["Closed Won", "Closed Won", "Closed Lost", "Contract Sent"])
                closed = created + timedelta(days=rnd.randrange(10, 60))
                if stage != "Contract Sent":  # closed deals closed in the past
                    closed = min(closed, TO)
                amount = f"{rnd.randrange(20, 400) * 50}"
                out.writerow([8000 + 10 * i + k, f"Deal {i}-{k}", stage, amount, closed.isoformat(),
                              f"{created.isoformat()} 10:00", owner])  # fmt: skip


def events_of(path: Path) -> list[dict[str, Any]]:
    """The canonical events the export stands for, read naively."""
    rep_of = {owner: rep for rep, owner in REPS.items()}
    out: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", newline="") as f:
        for d in csv.DictReader(f):
            deal = {"rep_id": rep_of[d["Deal owner"]], "amount": d["Amount"]}
            out.append(
                {**deal, "type": "deal.created", "occurred_at": d["Create Date"].replace(" ", "T") + "Z"}
            )
            outcome = {"Closed Won": "deal.won", "Closed Lost": "deal.lost"}.get(d["Deal Stage"])
            if outcome:
                out.append({**deal, "type": outcome, "occurred_at": f"{d['Close Date']}T12:00:00Z"})
    return out


def scorecards(seed: int = 3) -> dict[str, dict[str, int]]:
    rnd = random.Random(seed)
    return {rep: {trait: rnd.randint(1, 10) for trait in TRAITS} for rep in REPS}


def expected(cards: dict[str, dict[str, int]], outcomes: dict[str, float | None]) -> dict[str, Any]:
    """Per trait, scipy's statistics over the reps with an outcome; the interval by Fisher's z."""
    out = {}
    for trait in TRAITS:
        reps = [rep for rep in REPS if outcomes[rep] is not None]
        xs, ys = [cards[rep][trait] for rep in reps], [outcomes[rep] for rep in reps]
        pearson = stats.pearsonr(xs, ys)
        ci = pearson.confidence_interval(0.95)
        out[trait] = {"n": len(reps), "r": pearson.statistic, "p_value": pearson.pvalue,
                      "rho": stats.spearmanr(xs, ys).statistic, "ci95": [ci.low, ci.high]}  # fmt: skip
    return out


async def test_trait_correlations_of_an_imported_team_are_scipys_over_the_file(
    stack: Stack, engine: AsyncEngine, tenants: TenantFactory, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    t = await tenants.create()
    auth = {"Authorization": f"Bearer {t.api_key}"}
    cards = scorecards()
    for rep, owner in REPS.items():
        body = {"name": rep, "team": "west", "timezone": "UTC", "hired_at": FROM.isoformat(),
                "quota_monthly": str(QUOTAS[rep]), "aliases": {"hubspot_owner_id": owner}}  # fmt: skip
        r = await api.put(f"/v1/reps/{rep}", json=body, headers=auth)
        assert r.status_code in (200, 201), r.text
        r = await api.put(f"/v1/hiring/scorecards/{rep}", json={"traits": cards[rep]}, headers=auth)
        assert r.status_code in (200, 201), r.text
    export = tmp_path / "deals.csv"
    write_export(export)
    events = events_of(export)
    code, said = await run_import(stack, t, "hubspot-deals", export, rep_map=None)
    assert code == 0, said
    await wait_folded(engine, t.slug, len(events))

    window = {"from": FROM.isoformat(), "to": TO.isoformat()}
    for outcome in ("quota_attainment", "win_rate"):
        r = await api.get(
            "/v1/hiring/trait-correlations", params={**window, "outcome": outcome}, headers=auth
        )
        assert r.status_code == 200, r.text
        got = r.json()["traits"]
        outcomes = {rep: rep_metrics(events, {rep}, ORG, FROM, TO)[outcome] for rep in REPS}
        want = expected(cards, outcomes)
        assert want["coachability"]["n"] >= 10  # enough reps for a meaningful answer
        for trait, w in want.items():
            g = got[trait]
            assert (g["n"], g["insufficient_data"]) == (w["n"], False), (outcome, trait)
            for name in ("r", "rho", "p_value"):
                assert g[name] == pytest.approx(w[name], rel=1e-6, abs=1e-12), (outcome, trait, name)
            # SPEC: Fisher z with 1.96; scipy takes the exact normal quantile (1.95996...).
            assert g["ci95"] == pytest.approx(w["ci95"], abs=1e-3), (outcome, trait)
