"""A tenant's data as files (`salesloop tenants export SLUG DIR`), so a customer can take it with them.

One JSON lines file per table of the tenant (the tables `tenants delete` erases, read from the catalog
the same way: services/core/offboarding.py), all read in one read-only snapshot and streamed through
a server-side cursor, so memory stays bounded whatever the tenant's size:

- `events.jsonl`: the archive as canonical BuyerEvents (SPEC 1), one per line, in the order they were
  received. `salesloop import jsonl events.jsonl --tenant NEW` loads it into another tenant. The
  fields the service sets (`tenant`, `source`, `received_at`) and the aggregator's own (`rep_alias`,
  `attribution`, an erased transcript's kept analysis) are left out; `rep_id` is the rep the event
  was attributed to.
- `<table>.jsonl` for every other table (`tenants` included): one row per line, a JSON object of
  column name to value as PostgreSQL's `row_to_json` writes it (numbers exact, times RFC 3339, bytes
  as `\\x` and hex digits).
- `manifest.json`, written last: the format, the tenant, when, and each file with its table and rows.

Credentials are no data to take along and stay out: API keys (hashed), per-source secrets and the
contact pseudonym key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.offboarding import TENANTS, OffboardingError, TenantTable, tenant_tables
from services.core.privacy import ERASED

FORMAT = "salesloop-export/1"
MANIFEST = "manifest.json"
EVENTS = "events"
NOT_EXPORTED = ("api_keys", "tenant_secrets", "contact_pseudonym_keys")
# Set by the service, or the aggregator's own: no client sends them (and import refuses them).
LEFT_OUT = ("tenant", "source", "received_at", "rep_alias", "attribution", ERASED)
ROWS_PER_FETCH = 1_000

CANONICAL_EVENTS = f"""
SELECT ((e.payload - ARRAY[{", ".join(f"'{f}'" for f in LEFT_OUT)}])
        || jsonb_build_object('rep_id', e.rep_id))::text
FROM events AS e WHERE e.tenant = $1
ORDER BY e.received_at, e.event_id
"""


@dataclass(frozen=True)
class ExportedFile:
    file: str
    table: str
    rows: int
    format: str  # "buyer-event/1" (importable) or "row" (one table row per line)


def rows_sql(table: TenantTable, quote: Any) -> str:
    return f"SELECT row_to_json(t)::text FROM {quote(table.name)} AS t WHERE t.{quote(table.column)} = $1"


async def _write(conn: AsyncConnection, statement: str, slug: str, path: Path) -> int:
    """Stream the rows of `statement` (one text column; `$1` the slug) into `path`, one per line,
    through asyncpg's cursor: at most ROWS_PER_FETCH rows in memory."""
    raw = (await conn.get_raw_connection()).driver_connection
    assert raw is not None  # an open connection's
    rows = 0
    with path.open("wb") as out:
        async for record in raw.cursor(statement, slug, prefetch=ROWS_PER_FETCH):
            out.write(record[0].encode() + b"\n")
            rows += 1
    return rows


def _target(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise OffboardingError(f"{directory} exists and is not an empty directory")
    directory.mkdir(parents=True, exist_ok=True)


async def export_tenant(engine: AsyncEngine, slug: str, directory: Path) -> list[ExportedFile]:
    """Write the tenant's files and manifest into `directory` (new or empty); returns the files."""
    quote = engine.dialect.identifier_preparer.quote_identifier
    async with engine.connect() as plain:
        conn = await plain.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        async with conn.begin():
            tenant = (
                await conn.execute(
                    text("SELECT row_to_json(t)::text FROM tenants t WHERE slug = :s"), {"s": slug}
                )
            ).scalar()
            if tenant is None:
                raise OffboardingError(f"no tenant {slug!r}")
            _target(directory)
            files = []
            for table in await tenant_tables(conn):
                if table.name in NOT_EXPORTED:
                    continue
                canonical = table.name == EVENTS
                statement = CANONICAL_EVENTS if canonical else rows_sql(table, quote)
                name = f"{table.name}.jsonl"
                rows = await _write(conn, statement, slug, directory / name)
                files.append(ExportedFile(name, table.name, rows, "buyer-event/1" if canonical else "row"))
    manifest = {
        "format": FORMAT,
        "tenant": orjson.loads(tenant),
        "exported_at": datetime.now(UTC).isoformat(),
        "files": [asdict(f) for f in sorted(files, key=lambda f: (f.table != TENANTS, f.table))],
        "not_exported": list(NOT_EXPORTED),
    }
    (directory / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return files
