"""The dashboards as Grafana sees them: panels, targets, and queries with variables and macros expanded.

Expansion follows Grafana's rules for SQL datasources (SqlDatasource.interpolateVariable): a
single-value variable is inserted with its quotes doubled but not quoted; a multi-value or
include-All variable becomes a comma-separated list of quoted literals, and "All" without a custom
all value means every value the variable's query returned. The PostgreSQL datasource expands
`$__timeFilter(col)` to `col BETWEEN '<from>' AND '<to>'` and `$__timeFrom()`/`$__timeTo()` to the
quoted bounds, in UTC RFC 3339.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.deploy.tooling import DASHBOARDS

Dashboard = dict[str, Any]
VariableValue = str | Sequence[str]

_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_TIME_FILTER = re.compile(r"\$__timeFilter\(([^)]*)\)")


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref_id: str
    query: str  # `expr` of a Prometheus target, `rawSql` of a SQL target

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def load(path: Path) -> Dashboard:
    doc: Dashboard = json.loads(path.read_text())
    return doc


def dashboards() -> dict[str, Dashboard]:
    return {path.name: load(path) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def targets(dashboard: Dashboard) -> list[Target]:
    out = []
    for panel in panels(dashboard):
        for t in panel.get("targets", []):
            query = t.get("expr") if "expr" in t else t.get("rawSql")
            out.append(Target(dashboard["title"], panel["title"], t["refId"], str(query)))
    return out


def variables(dashboard: Dashboard) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def grafana_time(at: datetime) -> str:
    """Go's time.RFC3339Nano of a millisecond time range bound, in UTC."""
    text = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return re.sub(r"\.?0+Z$", "Z", text) if "." in text else text


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def interpolate_sql(
    sql: str, definitions: Mapping[str, Mapping[str, Any]], values: Mapping[str, VariableValue]
) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            return match.group(0)  # a macro ($__...) or an unknown variable: left as Grafana leaves it
        value, definition = values[name], definitions[name]
        if isinstance(value, str):
            if definition.get("multi") or definition.get("includeAll"):
                return quote_literal(value)
            return value.replace("'", "''")
        return ",".join(quote_literal(v) for v in value)

    return _VARIABLE.sub(replace, sql)


def expand_macros(sql: str, start: datetime, end: datetime) -> str:
    frm, to = quote_literal(grafana_time(start)), quote_literal(grafana_time(end))
    sql = _TIME_FILTER.sub(lambda m: f"{m.group(1).strip()} BETWEEN {frm} AND {to}", sql)
    return sql.replace("$__timeFrom()", frm).replace("$__timeTo()", to)


def expand_sql(
    sql: str,
    definitions: Mapping[str, Mapping[str, Any]],
    values: Mapping[str, VariableValue],
    start: datetime,
    end: datetime,
) -> str:
    expanded = expand_macros(interpolate_sql(sql, definitions, values), start, end)
    leftover = re.findall(r"\$\{?\w+", expanded)
    assert not leftover, f"unexpanded variables or macros {leftover} in:\n{expanded}"
    return expanded


def expand_promql(expr: str, rate_interval: str) -> str:
    expanded = expr.replace("$__rate_interval", rate_interval)
    leftover = re.findall(r"\$\{?\w+", expanded)
    assert not leftover, f"unexpanded variables {leftover} in {expanded}"
    return expanded
