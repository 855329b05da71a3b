"""A connection pool on the session Postgres, prepared like the aggregator's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.aggregator.store import prepare_connection
from services.core.db import asyncpg_dsn
from tests.conftest import Stack


@pytest.fixture(scope="session")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(
        asyncpg_dsn(stack.database_url), min_size=0, max_size=6, init=prepare_connection
    )
    yield p
    await p.close()
