"""The dashboard files are valid Grafana dashboards wired to the provisioned datasources."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy import grafana
from tests.deploy.grafana_sql import granted_tables, reader_migration
from tests.deploy.tooling import DASHBOARD_PROVIDERS, DATASOURCES, ROOT


def provisioned() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(DATASOURCES.read_text())
    return {ds["uid"]: ds for ds in doc["datasources"]}


def datasource_problems(where: str, ref: Any, sources: dict[str, dict[str, Any]]) -> list[str]:
    if not isinstance(ref, dict) or ref.get("uid") not in sources:
        return [f"{where}: datasource {ref!r} is not a provisioned uid ({sorted(sources)})"]
    if ref.get("type") != sources[ref["uid"]]["type"]:
        return [f"{where}: datasource type {ref.get('type')!r} differs from the provisioned one"]
    return []


def problems(dashboard: grafana.Dashboard, sources: dict[str, dict[str, Any]]) -> list[str]:
    found: list[str] = []
    title = dashboard.get("title", "?")
    ids = [p.get("id") for p in grafana.panels(dashboard)]
    if len(ids) != len(set(ids)) or None in ids:
        found.append(f"{title}: panel ids are missing or repeated: {ids}")
    cells: dict[tuple[int, int], str] = {}
    for panel in grafana.panels(dashboard):
        where = f"{title} / {panel.get('title')}"
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            found.append(f"{where}: no target")
        found += datasource_problems(where, panel.get("datasource"), sources)
        for t in targets:
            found += datasource_problems(f"{where} / {t.get('refId')}", t.get("datasource"), sources)
            if not (t.get("expr") or t.get("rawSql")):
                found.append(f"{where} / {t.get('refId')}: no query")
        pos = panel.get("gridPos", {})
        x0, y0 = pos.get("x", 0), pos.get("y", 0)
        area = {(x, y) for x in range(x0, x0 + pos.get("w", 0)) for y in range(y0, y0 + pos.get("h", 0))}
        if clash := sorted({cells[cell] for cell in area if cell in cells}):
            found.append(f"{where}: overlaps {', '.join(clash)}")
        cells.update(dict.fromkeys(area, where))
    for name, variable in grafana.variables(dashboard).items():
        if variable.get("type") == "query":
            found += datasource_problems(f"{title} / ${name}", variable.get("datasource"), sources)
    return found


@pytest.fixture(scope="module")
def sources() -> dict[str, dict[str, Any]]:
    return provisioned()


def test_both_dashboards_exist_with_unique_uids() -> None:
    boards = grafana.dashboards()
    assert set(boards) >= {"pipeline-health.json", "sales-feedback.json"}
    uids = [b["uid"] for b in boards.values()]
    assert len(uids) == len(set(uids)), uids
    for board in boards.values():
        assert board["title"]
        assert board["schemaVersion"] >= 36
        assert board["panels"]


@pytest.mark.parametrize("name", sorted(grafana.dashboards()))
def test_dashboard_panels_have_targets_on_provisioned_datasources(
    name: str, sources: dict[str, dict[str, Any]]
) -> None:
    assert problems(grafana.dashboards()[name], sources) == []


def test_the_checks_catch_a_broken_dashboard(sources: dict[str, dict[str, Any]]) -> None:
    board = grafana.dashboards()["pipeline-health.json"]
    board["panels"][1]["id"] = board["panels"][0]["id"]
    board["panels"][2]["targets"] = []
    board["panels"][3]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "elsewhere"}
    board["panels"][4]["gridPos"] = dict(board["panels"][5]["gridPos"])
    found = problems(board, sources)
    assert any("repeated" in p for p in found)
    assert any("no target" in p for p in found)
    assert any("'elsewhere'" in p for p in found)
    assert any("overlaps" in p for p in found)


def test_each_dashboard_uses_one_kind_of_datasource() -> None:
    boards = grafana.dashboards()
    pipeline = {p["datasource"]["uid"] for p in grafana.panels(boards["pipeline-health.json"])}
    sales = {p["datasource"]["uid"] for p in grafana.panels(boards["sales-feedback.json"])}
    assert pipeline == {"prometheus"}
    assert sales == {"salesloop-postgres"}


def test_every_sales_feedback_query_reads_only_tables_the_role_may_select() -> None:
    read = set()
    for target in grafana.targets(grafana.dashboards()["sales-feedback.json"]):
        read.update(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b(?![.(])", target.query))
    ctes = {
        "per_rep",
        "rates",
        "ranked",
        "medians",
        "cohort_reps",
        "sizes",
        "tenure",
        "latest",
        "listed",
        "firsts",
    }
    assert {"conversation_rollups", "coaching_snapshots", "coaching_snapshot_weeks"} <= read
    assert read - ctes <= granted_tables(), read - ctes - granted_tables()
    assert "call_analyses" not in granted_tables()  # transcripts' moments are text: never Grafana's


def test_postgres_datasource_logs_in_as_the_migrated_read_only_role(
    sources: dict[str, dict[str, Any]],
) -> None:
    migration = reader_migration()
    postgres = sources["salesloop-postgres"]
    assert postgres["type"] == "grafana-postgresql-datasource"
    assert postgres["user"] == migration.ROLE
    # From Grafana's environment, never written in the file.
    assert postgres["secureJsonData"]["password"] == "$SALESLOOP_GRAFANA_DB_PASSWORD"
    assert sources["prometheus"]["url"] == "http://prometheus:9090"


def test_the_dashboard_provider_reads_the_folder_compose_mounts() -> None:
    providers = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2] for v in compose["services"]["grafana"]["volumes"])
    assert [p["options"]["path"] for p in providers] == [mounts["./deploy/grafana/dashboards"]]
