"""Offboarding a tenant (`salesloop tenants delete`): every row of the tenant erased in one transaction,
and the register of deleted tenants that keeps its events still in Kafka from bringing it back.

**Which tables.** Read from the catalog when the command runs, never from a list kept here, so a table
added later is covered without a change: every ordinary or partitioned table of the schema with a
`tenant` column, and `tenants` itself (by `slug`). A partitioned table is deleted through its parent,
which reaches every partition. Foreign keys among them order the deletes, a referencing table before
the one it references, `tenants` last. Its API keys, per-source secrets and pseudonym key are such
rows too.

**One transaction**, under the aggregator's rebuild lock taken exclusively, as `salesloop rebuild` and
a contact's erasure take it: a batch in flight commits first, the next ones wait and then see the
register. Folding pauses meanwhile, for every tenant, for as long as the deletes take.

**The register** (`tenant_tombstones`: slug, time of the deletion) is written in the same transaction
and outside what the deletion erases. The aggregator reads it in every batch transaction
(`without_deleted_tenants`) and where it looks up the tenants of a batch (services/aggregator/dlq.py):
an event or CRM update of a slug in the register is dropped, neither folded nor dead-lettered, unless
the tenant has been created again and the event was received after that (its `received_at`, set by
ingest, at or after the new tenant's `created_at`). So a slug can be reused: the new tenant starts
empty, and its predecessor's backlog never counts for it. (Times from two clocks: an event received
within the clock difference of ingest and Postgres after the re-creation could be dropped.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.privacy_sql import BATCH_LOCK_KEY

log = logging.getLogger(__name__)

TENANTS = "tenants"
REGISTER_TABLE = "tenant_tombstones"

# Tables of the current schema holding rows of a tenant, with the column naming it. Partitions are
# reached through their parent.
TENANT_TABLES = """
SELECT c.relname AS name, a.attname AS column
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND (a.attname = 'tenant' OR (c.relname = 'tenants' AND a.attname = 'slug'))
ORDER BY c.relname
"""
# Foreign keys between tables (not the copies PostgreSQL keeps on partitions): (referencing, referenced).
REFERENCES = """
SELECT DISTINCT child.relname AS child, parent.relname AS parent
FROM pg_constraint k
JOIN pg_class child ON child.oid = k.conrelid
JOIN pg_class parent ON parent.oid = k.confrelid
JOIN pg_namespace n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = current_schema()
  AND NOT child.relispartition AND NOT parent.relispartition
"""
LOCK_TENANT = "SELECT slug FROM tenants WHERE slug = :slug FOR UPDATE"
DELETED_AT = "SELECT deleted_at FROM tenant_tombstones WHERE slug = :slug"
REGISTER = """
INSERT INTO tenant_tombstones (slug, deleted_at) VALUES (:slug, now())
ON CONFLICT (slug) DO UPDATE SET deleted_at = excluded.deleted_at
"""
# The batch's slugs that are in the register, with the creation time of the tenant now holding the
# slug (null: none does).
REGISTERED = """
SELECT r.slug, t.created_at FROM tenant_tombstones r LEFT JOIN tenants t ON t.slug = r.slug
WHERE r.slug = any($1::text[])
"""


class OffboardingError(ValueError):
    pass


@dataclass(frozen=True)
class TenantTable:
    name: str
    column: str  # `tenant`, or `slug` for `tenants`


class Received(Protocol):
    """An event or a CRM update as the aggregator decodes it."""

    @property
    def tenant(self) -> str: ...

    @property
    def received_at(self) -> datetime: ...


E = TypeVar("E", bound=Received)
U = TypeVar("U", bound=Received)
# Deleted slugs -> creation time of the tenant holding the slug again, or None.
Register = Mapping[str, datetime | None]


def deletion_order(tables: Iterable[str], references: Iterable[tuple[str, str]]) -> list[str]:
    """`tables` with every referencing table before the tables it references (ties by name).

    `references` are (referencing, referenced) pairs; pairs naming other tables, and a table's
    references to itself, do not order anything. A cycle raises OffboardingError.
    """
    pending = set(tables)
    waits_for: dict[str, set[str]] = {name: set() for name in pending}
    for child, parent in references:
        if child != parent and child in pending and parent in pending:
            waits_for[parent].add(child)
    order: list[str] = []
    while pending:
        ready = sorted(name for name in pending if not waits_for[name] & pending)
        if not ready:
            raise OffboardingError(f"foreign keys form a cycle among {', '.join(sorted(pending))}")
        order.extend(ready)
        pending.difference_update(ready)
    return order


def counts(item: Received, register: Register) -> bool:
    """Whether an event or update still counts: its tenant was never deleted, or was created again
    before the item was received."""
    if item.tenant not in register:
        return True
    created_at = register[item.tenant]
    return created_at is not None and item.received_at >= created_at


async def tenant_tables(conn: AsyncConnection) -> list[TenantTable]:
    """Every table holding rows of a tenant, in deletion order."""
    found = {row.name: row.column for row in await conn.execute(text(TENANT_TABLES))}
    refs = [(row.child, row.parent) for row in await conn.execute(text(REFERENCES))]
    return [TenantTable(name, found[name]) for name in deletion_order(found, refs)]


async def delete_tenant(engine: AsyncEngine, slug: str) -> dict[str, int]:
    """Erase every row of `slug` and register it as deleted; returns the rows deleted per table."""
    quote = engine.dialect.identifier_preparer.quote_identifier
    deleted: dict[str, int] = {}
    try:
        async with engine.begin() as conn:
            # Batches in flight commit first; the next ones see the register.
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": BATCH_LOCK_KEY})
            if (await conn.execute(text(LOCK_TENANT), {"slug": slug})).first() is None:
                gone = (await conn.execute(text(DELETED_AT), {"slug": slug})).scalar()
                was = f"; it was deleted at {gone.isoformat()}" if gone is not None else ""
                raise OffboardingError(f"no tenant {slug!r}{was}")
            await conn.execute(text(REGISTER), {"slug": slug})
            for table in await tenant_tables(conn):
                statement = f"DELETE FROM {quote(table.name)} WHERE {quote(table.column)} = :slug"
                result = await conn.execute(text(statement), {"slug": slug})
                deleted[table.name] = result.rowcount
    except IntegrityError as exc:
        # A table without a tenant column referencing one of the tenant's rows without ON DELETE.
        raise OffboardingError(f"nothing deleted: {exc.orig}") from None
    return deleted


async def registered(conn: asyncpg.Connection, tenants: Iterable[str]) -> dict[str, datetime | None]:
    """The register's entries for `tenants` (asyncpg: the aggregator's connection)."""
    slugs = sorted(set(tenants))
    if not slugs:
        return {}
    return {row["slug"]: row["created_at"] for row in await conn.fetch(REGISTERED, slugs)}


async def without_deleted_tenants(
    conn: asyncpg.Connection, events: list[E], updates: list[U]
) -> tuple[list[E], list[U]]:
    """The batch's events and updates that still count (`counts`), read in the batch transaction."""
    register = await registered(conn, [e.tenant for e in events] + [u.tenant for u in updates])
    if not register:
        return events, updates
    kept = [e for e in events if counts(e, register)]
    kept_updates = [u for u in updates if counts(u, register)]
    dropped = len(events) + len(updates) - len(kept) - len(kept_updates)
    if dropped:
        log.info("dropped events of deleted tenants", extra={"dropped": dropped, "tenants": sorted(register)})
    return kept, kept_updates
