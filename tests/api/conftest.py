"""What the API tests share: the app in-process with its real lifespan, and a rollup writer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.factories import RollupFactory, api_client
from tests.conftest import Stack


@pytest.fixture(scope="module")
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(stack) as c:
        yield c


@pytest.fixture
def rollups(engine: AsyncEngine) -> RollupFactory:
    return RollupFactory(engine)
