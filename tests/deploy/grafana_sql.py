"""Dashboard SQL run as Grafana runs it: expanded as Grafana expands it (tests/deploy/grafana.py) and
sent over a connection as the read-only role the 0002 migration creates, the role Grafana logs in as.

The `reader` fixture (tests/deploy/conftest.py) is that connection; the dashboard tests
(test_grafana_sql.py, test_grafana_pipeline.py, test_grafana_economics.py) read every panel with it.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.deploy import grafana
from tests.deploy.tooling import ROOT

ROLE = "salesloop_grafana"
PASSWORD = "grafana-test-password"
MIGRATION = ROOT / "migrations" / "versions" / "2026_11_22_0002_grafana_reader.py"
# A table a query reads: after FROM or JOIN, but not `extract(epoch FROM x)`, a schema-qualified
# name or a function call.
TABLE_READ = re.compile(r"(?<!epoch )\b(?:FROM|JOIN)\s+([a-z_]+)\b(?![.(])")


@asynccontextmanager
async def connect_as_reader(engine: AsyncEngine, database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the role the migration created (NOLOGIN in the tests' database: no password
    was configured, so one is given here)."""
    async with engine.begin() as conn:
        await conn.execute(text(f"ALTER ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"))
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    reader = await asyncpg.connect(urlunsplit((parts.scheme, f"{ROLE}:{PASSWORD}@{host}", *parts[2:])))
    try:
        assert await reader.fetchval("SELECT current_user") == ROLE
        yield reader
    finally:
        await reader.close()


async def fetch(
    reader: asyncpg.Connection,
    board: grafana.Dashboard,
    sql: str,
    values: Mapping[str, grafana.VariableValue],
    start: datetime,
    end: datetime,
) -> list[asyncpg.Record]:
    """The rows of one of `board`'s queries, its variables set to `values` and its time range
    `start`-`end`."""
    expanded = grafana.expand_sql(sql, grafana.variables(board), values, start, end)
    rows: list[asyncpg.Record] = await reader.fetch(expanded)
    return rows


async def panel_rows(
    reader: asyncpg.Connection,
    board: grafana.Dashboard,
    values: Mapping[str, grafana.VariableValue],
    start: datetime,
    end: datetime,
) -> dict[str, list[asyncpg.Record]]:
    """Panel title -> the rows of its query, for every SQL target of `board`."""
    return {
        target.panel: await fetch(reader, board, target.query, values, start, end)
        for target in grafana.targets(board)
    }


def tables_read(board: grafana.Dashboard) -> set[str]:
    """The names every query of `board` reads from (its CTEs included)."""
    return {name for target in grafana.targets(board) for name in TABLE_READ.findall(target.query)}


def reader_migration() -> ModuleType:
    """The migration that creates the read-only role, loaded from its file."""
    spec = importlib.util.spec_from_file_location("grafana_reader", MIGRATION)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    return migration


def granted_tables() -> set[str]:
    """The tables the migrations let the Grafana role select, by reading their GRANT statements."""
    migration = reader_migration()
    tables = {*migration.TABLES, "reps"}
    grant = re.compile(rf"GRANT SELECT (?:\([\w, ]+\) )?ON (\w+) TO {migration.ROLE}")  # columns too
    for path in sorted(MIGRATION.parent.glob("*.py")):
        tables.update(grant.findall(path.read_text()))
    return tables
