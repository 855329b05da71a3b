from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import Services


@pytest.fixture
async def api(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=services.api_url, timeout=30) as client:
        yield client
