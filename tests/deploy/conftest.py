"""The deploy tests' shared fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Stack
from tests.deploy.grafana_sql import connect_as_reader


@pytest.fixture(scope="module")
async def reader(stack: Stack, engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session's database as the read-only role Grafana uses."""
    async with connect_as_reader(engine, stack.database_url) as conn:
        yield conn
