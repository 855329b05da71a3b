"""Events and CRM updates as they come off the topic, batch transactions, and readers of the tables."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import orjson

from services.aggregator.commit import commit_batch
from services.aggregator.store import Store
from services.core import crm
from services.core.crm import CrmUpdate
from services.core.events import SCHEMA_HEADER, RepAlias, Source
from services.core.models import CHANNEL_COUNTERS, REP_COUNTERS
from services.core.wire import Event, decode_message

RECEIVED = datetime.fromisoformat("2026-12-01T00:00:00+00:00")
_ids = itertools.count()


def event(tenant: str, type_: str, at: str, *, source: str = "api", **fields: Any) -> Event:
    """A BuyerEvent message as ingest writes it, decoded as the aggregator does."""
    body = {
        "event_id": fields.pop("event_id", f"e{next(_ids)}"),
        "type": type_,
        "occurred_at": at,
        "tenant": tenant,
        "source": source,
        "received_at": RECEIVED.isoformat(),
        # Ingest marks the events of a vendor that attributes them through CRM entity state.
        "attribution": "crm_entity" if source == Source.HUBSPOT else None,
        **fields,
    }
    decoded = decode_message(orjson.dumps({k: v for k, v in body.items() if v is not None}), [SCHEMA_HEADER])
    assert isinstance(decoded, Event), decoded
    return decoded


def update(
    tenant: str,
    entity: str,
    entity_id: str,
    prop: str,
    value: str | None,
    at: str,
    *,
    source: Source = Source.HUBSPOT,
    event_id: str | None = None,
) -> CrmUpdate:
    """A CRM update message as ingest writes it (services.core.crm), decoded as the aggregator does."""
    alias = RepAlias(kind="hubspot_owner_id", value=value) if prop == "owner" and value else None
    vendor = crm.EntityUpdate(
        entity, entity_id, prop, value, datetime.fromisoformat(at), event_id or f"hs{next(_ids)}", alias
    )
    attribution = "crm_entity" if source is Source.HUBSPOT else None
    message = crm.to_message(vendor, tenant, source, RECEIVED, attribution)
    decoded = decode_message(message, [crm.SCHEMA_HEADER])
    assert isinstance(decoded, CrmUpdate), decoded
    return decoded


async def new_tenant(
    pool: asyncpg.Pool,
    timezone: str = "UTC",
    reps: Mapping[str, str] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> str:
    """A tenant with reps (rep_id -> timezone) and HubSpot owner aliases (owner id -> rep_id)."""
    slug = f"st{next(_ids)}-{secrets.token_hex(3)}"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO tenants (slug, currency, timezone) VALUES ($1, 'USD', $2)", slug, timezone
        )
        for rep_id, zone in (reps or {}).items():
            await conn.execute(
                "INSERT INTO reps (tenant, rep_id, timezone) VALUES ($1, $2, $3)", slug, rep_id, zone
            )
        for owner, rep_id in (aliases or {}).items():
            await add_alias(conn, slug, "hubspot_owner_id", owner, rep_id)
    return slug


async def add_alias(conn: asyncpg.Connection, tenant: str, kind: str, value: str, rep_id: str) -> None:
    """What PUT /v1/reps stores for one alias."""
    await conn.execute(
        "INSERT INTO rep_aliases (tenant, kind, value, rep_id) VALUES ($1, $2, $3, $4)",
        tenant,
        kind,
        value,
        rep_id,
    )


async def commit(pool: asyncpg.Pool, events: Sequence[Event], updates: Sequence[CrmUpdate] = ()) -> None:
    """One batch transaction as the consumer runs it (without offsets), its CRM updates beside its events."""
    await commit_batch(Store(pool, "state-tests", "t"), events, {}, updates)


def _nonzero(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    return {k: v for k, v in zip(names, values, strict=True) if v != 0}


async def rep_rollups(
    conn: asyncpg.Connection | asyncpg.Pool, tenant: str
) -> dict[tuple[str, date], dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT rep_id, day, {', '.join(REP_COUNTERS)} FROM rollup_rep_daily WHERE tenant = $1", tenant
    )
    out = {(r["rep_id"], r["day"]): _nonzero(REP_COUNTERS, list(r.values())[2:]) for r in rows}
    return {k: v for k, v in out.items() if v}


async def channel_rollups(
    conn: asyncpg.Connection | asyncpg.Pool, tenant: str
) -> dict[tuple[str, date], dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT channel, day, {', '.join(CHANNEL_COUNTERS)} FROM rollup_channel_daily WHERE tenant = $1",
        tenant,
    )
    out = {(r["channel"], r["day"]): _nonzero(CHANNEL_COUNTERS, list(r.values())[2:]) for r in rows}
    return {k: v for k, v in out.items() if v}


async def table(
    conn: asyncpg.Connection | asyncpg.Pool, name: str, tenant: str, *columns: str
) -> list[tuple[Any, ...]]:
    """The tenant's rows of a table, sorted, as plain tuples."""
    rows = await conn.fetch(f"SELECT {', '.join(columns)} FROM {name} WHERE tenant = $1", tenant)
    return sorted((tuple(r.values()) for r in rows), key=repr)
