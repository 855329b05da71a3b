"""Where the api reads its answers: SALESLOOP_READ_DATABASE_URL (a streaming replica), else the primary.

Every GET answer is read through the read engine or the read pool, and both connect to the same
server: no answer mixes the primary and the replica. Its `as_of` is read on that server too (from the
folded state next to its numbers), so a replica that lags answers an older `as_of`, never one whose
events it has not replayed yet. Writes (PUT, DELETE), key checks (a revoked key must stop working at
once) and the weekly coaching snapshots use the primary.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.kit.answers import example
from services.api.kit.reads import ReadPool
from services.core.db import create_engine
from services.core.settings import Settings

APPLICATION_NAME = "salesloop-api-replica"

# Lag: 0 while everything received is replayed, else the time since the newest transaction replayed
# committed on the primary (an upper bound of how old the answers are).
STATE = """
SELECT pg_is_in_recovery() AS in_recovery,
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
            ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
       END AS replay_lag_s,
       pg_is_in_recovery() AND pg_get_wal_replay_pause_state() <> 'not paused' AS replay_paused
"""


class ReplicaState(BaseModel):
    model_config = example({"in_recovery": True, "replay_lag_s": 0.0, "replay_paused": False})

    in_recovery: bool = Field(description="The read database is a standby replaying the primary's WAL")
    replay_lag_s: float | None = Field(
        description="0 when all WAL received is replayed, else seconds since the newest replayed "
        "transaction committed; null when the read database is not a standby"
    )
    replay_paused: bool = Field(description="Replay is paused (pg_wal_replay_pause())")


def read_settings(settings: Settings) -> Settings:
    """The settings with the read database as `database_url` (the same object without a replica; an
    empty SALESLOOP_READ_DATABASE_URL, as the compose file passes when none is set, is none)."""
    if settings.read_database_url is None or not settings.read_database_url.get_secret_value():
        return settings
    return settings.model_copy(update={"database_url": settings.read_database_url})


async def open_reads(settings: Settings, primary: AsyncEngine) -> tuple[AsyncEngine, ReadPool]:
    """The engine and the pool GET answers read through; the primary's engine without a replica."""
    reading = read_settings(settings)
    engine = primary if reading is settings else create_engine(reading, APPLICATION_NAME)
    return engine, await ReadPool.open(reading)


async def replica_state(engine: AsyncEngine, timeout_s: float) -> ReplicaState:
    """The read database's recovery state; raises TimeoutError, OSError or SQLAlchemyError if away."""
    async with asyncio.timeout(timeout_s), engine.connect() as conn:
        row = (await conn.exec_driver_sql(STATE)).one()
    return ReplicaState(
        in_recovery=row.in_recovery, replay_lag_s=row.replay_lag_s, replay_paused=row.replay_paused
    )
