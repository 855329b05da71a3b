"""All SQL of the contacts domain: erasing one contact's personal data everywhere salesloop keeps it.

One transaction, under the rebuild lock taken exclusively (services/core/privacy_sql.py): no batch
commits meanwhile, so the register and the rows agree for the next one. Per table:

- `events`: the contact's events, its calls' transcripts (`call.transcribed` naming them) and the
  calls its transcripts name: contact id -> pseudonym, ids that embed it, attributes dropped, and
  the transcripts' text erased keeping each call's stored analysis;
- `crm_updates`, `crm_entities`: the contact's record and the deals naming it as their contact;
- `leads`, `deal_facts`, `call_analyses` (also the moments' text);
- `failed_events`: dead-lettered messages of the contact.
Nothing is counted differently afterwards, and `salesloop rebuild` folds the same numbers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.contacts.rows import Rewrite
from services.core.http import ApiError, database_unavailable
from services.core.privacy import erase_message, erase_message_key, message_contacts, pseudonym
from services.core.privacy_sql import (
    ERASED_MOMENTS_SQL,
    call_of,
    ensure_key,
    erase_transcripts,
    register,
    take_batch_lock,
)

# How long to wait for batches in flight (or a rebuild) before answering 503.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '10s'"

EVENTS_OF = """
SELECT event_id, payload::text AS payload FROM events WHERE tenant = $1 AND contact_id = $2
ORDER BY event_id FOR UPDATE
"""
TRANSCRIPTS_OF_CALLS = """
SELECT event_id, payload::text AS payload FROM events
WHERE tenant = $1 AND type = 'call.transcribed' AND (payload ->> 'call_event_id') = any($2::text[])
ORDER BY event_id FOR UPDATE
"""
CALLS = """
SELECT event_id, payload::text AS payload FROM events
WHERE tenant = $1 AND event_id = any($2::text[]) AND type = 'call.completed'
ORDER BY event_id FOR UPDATE
"""
REWRITE_EVENTS = """
UPDATE events AS e SET event_id = u.new_id, contact_id = u.contact_id, payload = u.payload::jsonb
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(event_id, new_id, contact_id, payload)
WHERE e.tenant = $1 AND e.event_id = u.event_id
"""
_UPDATE_COLUMNS = "SELECT update_id, entity, entity_id, property, value FROM crm_updates"
UPDATES_OF_CONTACT = f"""
{_UPDATE_COLUMNS} WHERE tenant = $1 AND entity_id = $2 AND entity = 'contact' FOR UPDATE
"""
UPDATES_NAMING_CONTACT = f"""
{_UPDATE_COLUMNS} WHERE tenant = $1 AND property = 'contact' AND value = $2 FOR UPDATE
"""
REWRITE_UPDATES = """
UPDATE crm_updates AS c SET update_id = u.new_id, entity_id = u.entity_id, value = u.value
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(update_id, new_id, entity_id, value)
WHERE c.tenant = $1 AND c.update_id = u.update_id
"""
ENTITIES = """
SELECT c.entity, c.entity_id, c.contact_id, c.history::text AS history, c.events::text AS events
FROM unnest($2::text[], $3::text[]) AS k(entity, entity_id)
JOIN crm_entities c ON c.tenant = $1 AND c.entity = k.entity AND c.entity_id = k.entity_id
ORDER BY c.entity, c.entity_id
FOR UPDATE OF c
"""
REWRITE_ENTITIES = """
UPDATE crm_entities AS c
SET entity_id = u.new_id, contact_id = u.contact_id, history = u.history::jsonb, events = u.events::jsonb
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
  AS u(entity, entity_id, new_id, contact_id, history, events)
WHERE c.tenant = $1 AND c.entity = u.entity AND c.entity_id = u.entity_id
"""
LEAD = """
SELECT created_event_id, origin_event_id FROM leads WHERE tenant = $1 AND contact_id = $2 FOR UPDATE
"""
REWRITE_LEAD = """
UPDATE leads SET contact_id = $3, created_event_id = $4, origin_event_id = $5
WHERE tenant = $1 AND contact_id = $2
"""
DEAL_FACTS = """
SELECT event_id, contact_id FROM deal_facts
WHERE tenant = $1 AND (contact_id = $2 OR event_id = any($3::text[]))
ORDER BY event_id FOR UPDATE
"""
REWRITE_DEAL_FACTS = """
UPDATE deal_facts AS d SET event_id = u.new_id, contact_id = u.contact_id
FROM unnest($2::text[], $3::text[], $4::text[]) AS u(event_id, new_id, contact_id)
WHERE d.tenant = $1 AND d.event_id = u.event_id
"""
ANALYSES = """
SELECT call_event_id, transcript_event_id FROM call_analyses
WHERE tenant = $1 AND (contact_id = $2 OR call_event_id = any($3::text[]))
ORDER BY call_event_id FOR UPDATE
"""
REWRITE_ANALYSES = f"""
UPDATE call_analyses AS c
SET call_event_id = u.new_id, transcript_event_id = u.transcript_event_id, contact_id = NULL,
    moments = {ERASED_MOMENTS_SQL}, erased_at = coalesce(c.erased_at, $5)
FROM unnest($2::text[], $3::text[], $4::text[]) AS u(call_event_id, new_id, transcript_event_id)
WHERE c.tenant = $1 AND c.call_event_id = u.call_event_id
"""
# A deal's change of contact (the pipeline fold's history, services/core/models/pipeline.py).
DEAL_CHANGES = """
UPDATE deal_changes SET value = $3 WHERE tenant = $1 AND kind = 'contact' AND value = $2
"""
# Any other table of tenant rows with a `contact_id` column: the folds added after this module.
OTHER_CONTACT_TABLES = """
SELECT c.table_name
FROM information_schema.columns c
JOIN information_schema.tables t
  ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
JOIN information_schema.columns k
  ON k.table_schema = c.table_schema AND k.table_name = c.table_name AND k.column_name = 'tenant'
WHERE c.table_schema = current_schema() AND c.column_name = 'contact_id'
  AND c.data_type IN ('text', 'character varying') AND c.table_name <> all($1::text[])
ORDER BY 1
"""
# A message of the tenant's that holds the contact id somewhere (checked closer in Python), or one of
# unknown tenant whose Kafka key names the contact.
FAILED = """
SELECT id, tenant, event_id, key, value FROM failed_events
WHERE (tenant = $1 AND (position($2::bytea IN value) > 0 OR key = $3)) OR (tenant IS NULL AND key = $3)
ORDER BY id FOR UPDATE
"""
REWRITE_FAILED = """
UPDATE failed_events AS f SET event_id = u.event_id, key = u.key, value = u.value
FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[]) AS u(id, event_id, key, value)
WHERE f.id = u.id
"""


# The tables rewritten one by one above; the erasure of any other `contact_id` column is generic.
KNOWN_TABLES = ("events", "crm_entities", "leads", "deal_facts", "call_analyses")


@dataclass(frozen=True)
class Erasure:
    erased_at: datetime  # when the contact was first erased
    rows: dict[str, int]  # rows this erasure rewrote, per table


async def erase_contact(engine: AsyncEngine, tenant: str, contact_id: str) -> Erasure:
    try:
        async with _connection(engine) as conn, conn.transaction():
            await conn.execute(LOCK_TIMEOUT)
            await take_batch_lock(conn, exclusive=True)
            alias = pseudonym(await ensure_key(conn, tenant), contact_id)
            erased_at = await register(conn, tenant, alias)
            job = _Job(conn, tenant, Rewrite(contact_id, alias), datetime.now(UTC))
            await job.run()
    except asyncpg.LockNotAvailableError:
        raise ApiError(
            503,
            "busy",
            "a rebuild or a long batch holds the archive; retry later",
            headers={"Retry-After": "10"},
        ) from None
    except (OSError, TimeoutError, SQLAlchemyError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
        raise database_unavailable("the contact cannot be erased right now; retry later") from None
    return Erasure(erased_at, job.rows)


@asynccontextmanager
async def _connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """The engine's asyncpg connection itself: the erasure shares its statements with the aggregator."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        yield raw.driver_connection


@dataclass
class _Job:
    conn: asyncpg.Connection
    tenant: str
    rewrite: Rewrite
    at: datetime
    rows: dict[str, int] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)  # archived event id -> its new id
    calls: set[str] = field(default_factory=set)  # the contact's calls, by their archived ids
    deals: set[str] = field(default_factory=set)

    async def run(self) -> None:
        await self.events()
        entities = await self.updates()
        await self.entities(entities)
        await self.lead()
        await self.deal_facts()
        await self.analyses()
        transcripts = list(self.renamed.values())
        self.rows["transcripts"] = await erase_transcripts(self.conn, self.tenant, transcripts, self.at)
        await self.failed()
        await self.others()

    async def events(self) -> None:
        c, t, r = self.conn, self.tenant, self.rewrite
        own = await c.fetch(EVENTS_OF, t, r.contact_id)
        for row in own:
            data = orjson.loads(row["payload"])
            self.calls.update(call for call in [call_of(data)] if call is not None)
            self.deals.update(d for d in [data.get("deal_id")] if isinstance(d, str))
        calls = sorted(self.calls)
        more = [*await c.fetch(TRANSCRIPTS_OF_CALLS, t, calls), *await c.fetch(CALLS, t, calls)]
        found = {row["event_id"]: row["payload"] for row in [*own, *more]}
        old, new, contacts, payloads = [], [], [], []
        for event_id, payload in sorted(found.items()):
            data = r.event(payload)
            old.append(event_id)
            new.append(data["event_id"])
            contacts.append(data.get("contact_id"))
            payloads.append(orjson.dumps(data).decode())
        self.renamed = dict(zip(old, new, strict=True))
        await c.execute(REWRITE_EVENTS, t, old, new, contacts, payloads)
        self.rows["events"] = len(old)

    async def updates(self) -> set[tuple[str, str]]:
        """Rewrites the contact's CRM updates; returns the entities they belong to."""
        c, t, r = self.conn, self.tenant, self.rewrite
        found = {
            row["update_id"]: dict(row.items())
            for statement in (UPDATES_OF_CONTACT, UPDATES_NAMING_CONTACT)
            for row in await c.fetch(statement, t, r.contact_id)
        }
        entities = {("contact", r.contact_id)} | {(u["entity"], u["entity_id"]) for u in found.values()}
        rows = [(update_id, r.update(u)) for update_id, u in sorted(found.items())]
        await _rewrite(
            c, REWRITE_UPDATES, t, [(i, u["update_id"], u["entity_id"], u["value"]) for i, u in rows]
        )
        self.rows["crm_updates"] = len(rows)
        return entities | {("deal", d) for d in self.deals}

    async def entities(self, keys: set[tuple[str, str]]) -> None:
        c, t, r = self.conn, self.tenant, self.rewrite
        ordered = sorted(keys)
        found = await c.fetch(ENTITIES, t, [k[0] for k in ordered], [k[1] for k in ordered])
        rows = [
            (e["entity"], e["entity_id"], r.entity_id(e["entity"], e["entity_id"]),
             r.contact(e["contact_id"]), r.history(e["history"]), r.entity_events(e["events"]))
            for e in found
        ]  # fmt: skip
        await _rewrite(c, REWRITE_ENTITIES, t, rows)
        self.rows["crm_entities"] = len(rows)

    async def lead(self) -> None:
        c, t, r = self.conn, self.tenant, self.rewrite
        row = await c.fetchrow(LEAD, t, r.contact_id)
        if row is not None:
            created, origin = (None if v is None else r.id(v) for v in row.values())
            await c.execute(REWRITE_LEAD, t, r.contact_id, r.alias, created, origin)
        self.rows["leads"] = int(row is not None)

    async def deal_facts(self) -> None:
        c, t, r = self.conn, self.tenant, self.rewrite
        found = await c.fetch(DEAL_FACTS, t, r.contact_id, list(self.renamed))
        rows = [(f["event_id"], r.id(f["event_id"]), r.contact(f["contact_id"])) for f in found]
        await _rewrite(c, REWRITE_DEAL_FACTS, t, rows)
        self.rows["deal_facts"] = len(rows)

    async def analyses(self) -> None:
        c, t, r = self.conn, self.tenant, self.rewrite
        found = await c.fetch(ANALYSES, t, r.contact_id, sorted(self.calls))
        rows = [(a["call_event_id"], r.id(a["call_event_id"]), r.id(a["transcript_event_id"])) for a in found]
        await _rewrite(c, REWRITE_ANALYSES, t, rows, self.at)
        self.rows["call_analyses"] = len(rows)

    async def failed(self) -> None:
        c, t, r = self.conn, self.tenant, self.rewrite
        key = f"{t}:{r.contact_id}".encode()
        rows = []
        for f in await c.fetch(FAILED, t, r.contact_id.encode(), key):
            value = bytes(f["value"])
            if r.contact_id in message_contacts(value) or f["key"] == key:
                rows.append((
                    f["id"],
                    None if f["event_id"] is None else r.id(f["event_id"]),
                    erase_message_key(f["key"], f["tenant"] or t, r.contact_id, r.alias),
                    erase_message(value, r.contact_id, r.alias, self.at),
                ))  # fmt: skip
        if rows:
            await c.execute(REWRITE_FAILED, *(list(col) for col in zip(*rows, strict=True)))
        self.rows["failed_events"] = len(rows)

    async def others(self) -> None:
        """Tables with a contact column that this module does not know one by one."""
        c, t, r = self.conn, self.tenant, self.rewrite
        self.rows["deal_changes"] = affected(await c.execute(DEAL_CHANGES, t, r.contact_id, r.alias))
        for row in await c.fetch(OTHER_CONTACT_TABLES, list(KNOWN_TABLES)):
            name = row["table_name"]
            status = await c.execute(
                f'UPDATE "{name}" SET contact_id = $3 WHERE tenant = $1 AND contact_id = $2',
                t, r.contact_id, r.alias,
            )  # fmt: skip
            self.rows[name] = affected(status)


def affected(status: str) -> int:
    """The row count of a command status such as "UPDATE <rows>"."""
    return int(status.rsplit(" ", 1)[-1])


async def _rewrite(
    conn: asyncpg.Connection, statement: str, tenant: str, rows: Sequence[Sequence[Any]], *extra: Any
) -> None:
    """Run an `unnest` rewrite with `rows` as its columns after the tenant; nothing if no rows."""
    if rows:
        await conn.execute(statement, tenant, *(list(col) for col in zip(*rows, strict=True)), *extra)
