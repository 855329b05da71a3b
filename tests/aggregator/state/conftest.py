"""A connection pool on the session Postgres, prepared like the aggregator's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.aggregator.store import CREATE_STAGE
from services.core.db import asyncpg_dsn
from tests.conftest import Stack


async def _prepare(conn: asyncpg.Connection) -> None:
    await conn.execute(CREATE_STAGE)


@pytest.fixture(scope="session")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(asyncpg_dsn(stack.database_url), min_size=0, max_size=6, init=_prepare)
    yield p
    await p.close()
