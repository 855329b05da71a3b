"""The app itself: health routes, Prometheus exposition, the OpenAPI document."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import ServiceProcess, free_port
from services.api.app import create_app
from tests.api.factories import RollupFactory, bearer
from tests.conftest import Stack
from tests.factories import TenantFactory


async def test_health(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    r = await client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready"}


async def test_not_ready_without_a_database_and_answers_within_the_bound(stack: Stack) -> None:
    url = f"postgresql://salesloop@127.0.0.1:{free_port()}/nowhere"
    app = create_app(stack.settings(database_url=url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        start = time.monotonic()
        r = await c.get("/readyz")
        assert time.monotonic() - start < 5
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "not_ready"
        assert (await c.get("/healthz")).status_code == 200


async def test_metrics_exposition(
    client: httpx.AsyncClient, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    await RollupFactory(engine).rep(t.slug, "r1")
    assert (await client.get("/v1/reps/r1/metrics", headers=bearer(t.api_key))).status_code == 200
    text = (await client.get("/metrics")).text
    assert 'salesloop_api_rollup_read_seconds_count{query="rep_metrics"}' in text
    assert 'salesloop_api_requests_total{method="GET",route="/v1/reps/{rep_id}/metrics",status="200"}' in text
    assert 'route="/healthz"' not in text
    assert t.slug not in text


async def test_openapi_documents_every_route_with_models_and_examples(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "salesloop API"
    schemas = doc["components"]["schemas"]
    expected = {
        ("put", "/v1/reps/{rep_id}"),
        ("get", "/v1/reps"),
        ("get", "/v1/reps/{rep_id}"),
        ("get", "/v1/reps/{rep_id}/metrics"),
        ("get", "/v1/teams/{team}/metrics"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    found = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert expected <= found

    def example_of(content: dict[str, Any]) -> Any:
        if "example" in content:
            return content["example"]
        ref = content["schema"].get("$ref", "")
        return schemas.get(ref.rsplit("/", 1)[-1], {}).get("examples")

    for method, path in found:
        op = doc["paths"][path][method]
        ok = op["responses"].get("200") or op["responses"].get("201")
        assert ok is not None, (method, path)
        content = next(iter(ok["content"].values()))
        assert example_of(content), (method, path)
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"]["$ref"].endswith("ErrorBody")

    metrics_op = doc["paths"]["/v1/reps/{rep_id}/metrics"]["get"]
    assert {p["name"] for p in metrics_op["parameters"]} >= {"rep_id", "from", "to", "window"}
    assert metrics_op["security"] == [{"HTTPBearer": []}]
    assert set(schemas["RepMetricsOut"]["properties"]) >= {"rep_id", "from", "to", "as_of", "metrics"}
    assert "examples" in schemas["RepIn"]


async def test_salesloop_api_serves_as_a_process(
    stack: Stack, tenants: TenantFactory, engine: AsyncEngine
) -> None:
    t = await tenants.create()
    await RollupFactory(engine).rep(t.slug, "r1")
    port = free_port()
    log_path = stack.root / f"api-{port}.log"
    proc = ServiceProcess(
        "api", ["api", "--port", str(port)], stack.env, f"http://127.0.0.1:{port}/healthz", log_path
    )
    proc.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert (await c.get("/readyz")).status_code == 200
            r = await c.get("/v1/reps/r1/metrics", headers=bearer(t.api_key))
            assert r.status_code == 200, r.text
            assert r.json()["rep_id"] == "r1"
    finally:
        proc.stop()
    # SIGTERM drains and shuts the lifespan down; uvicorn then exits by re-raising the signal.
    assert proc.proc is not None
    assert proc.proc.returncode in (0, -signal.SIGTERM)
    messages = [json.loads(line)["msg"] for line in log_path.read_text().splitlines()]
    assert messages.index("api started") < messages.index("api stopped")
