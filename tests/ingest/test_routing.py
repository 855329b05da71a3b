"""The data routes' lean request handling (`services.ingest.routing`): no parameter validation or
dependency resolution per request, and errors still answered by the app's handlers and counted under
the route template."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import opentelemetry.trace
import pytest
from fastapi.dependencies.utils import solve_dependencies

from services.ingest import routes
from services.ingest.app import create_app
from services.ingest.sources import VENDORS
from tests.conftest import Stack
from tests.ingest.harness import metric

DATA_PATHS = ["/v1/events/t", *(vendor.path.replace("{tenant}", "t") for vendor in VENDORS)]


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(stack.settings())
    # An unhandled error is answered by the app and then re-raised to the server: the answer is tested.
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ingest") as client,
    ):
        yield client


async def test_data_routes_resolve_no_dependencies_and_look_up_no_tracing(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    solved: list[str] = []

    async def counting(**kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await solve_dependencies(**kwargs)

    tracer_lookups: list[None] = []
    get_tracer_provider = opentelemetry.trace.get_tracer_provider

    def counting_lookup() -> Any:
        tracer_lookups.append(None)
        return get_tracer_provider()

    monkeypatch.setattr("fastapi.routing.solve_dependencies", counting)
    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", counting_lookup)
    for path in DATA_PATHS:
        r = await client.post(path, content=b"{}", headers={"Content-Type": "application/json"})
        assert r.status_code in (401, 415), (path, r.text)
    assert solved == []
    # FastAPI's native OpenTelemetry is off: the service reports through /metrics.
    assert tracer_lookups == []
    # The spy does see routes that take dependencies.
    assert (await client.get("/readyz")).status_code == 200
    assert solved == ["/readyz"]


async def test_a_data_route_answers_wrong_methods_with_405_in_the_error_format(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get("/v1/events/t")
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"


async def test_an_unexpected_error_in_a_data_route_is_a_json_500_counted_under_its_template(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes, "require_json", broken)
    route = {"route": "/v1/events/{tenant}", "method": "POST", "status": "500"}
    before = await _requests(client, route)
    r = await client.post("/v1/events/t", content=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "message": "internal error", "details": []}}
    assert await _requests(client, route) == before + 1


async def _requests(client: httpx.AsyncClient, labels: dict[str, str]) -> float:
    return await metric(client, "salesloop_ingest_requests_total", **labels)
