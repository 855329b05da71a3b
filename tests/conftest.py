"""One real Postgres and one real broker per test session, started by the code `salesloop dev` uses."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import EmbeddedBroker, EmbeddedPostgres, ServiceProcess, free_port
from services.core.db import create_engine
from services.core.kafka import ensure_topics
from services.core.migrate import upgrade_head
from services.core.settings import DEV_SECRET_KEY, Settings
from tests.factories import TenantFactory

# The files that share the loaded demo organisation (tests/demo/conftest.py: `loaded`).
DEMO_ORGANISATION = frozenset(
    {"test_billing.py", "test_cli.py", "test_pipeline.py", "test_pipeline_forecast.py"}
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` spreads the files over two xdist workers (`--dist loadgroup`): a file's tests stay on
    one worker, so its module fixtures are built once, and the files that share the loaded demo
    organisation stay together, so it is loaded once."""
    for item in items:
        path = item.path
        shared = path.parent.name == "demo" and path.name in DEMO_ORGANISATION
        item.add_marker(pytest.mark.xdist_group("demo-organisation" if shared else str(path)))


@dataclass
class Stack:
    root: Path
    pg: EmbeddedPostgres
    broker: EmbeddedBroker
    database_url: str
    env: dict[str, str] = field(default_factory=dict)

    def settings(self, **overrides: object) -> Settings:
        return Settings(**{**self._base(), **overrides})  # type: ignore[arg-type]

    def _base(self) -> dict[str, object]:
        return {
            "env": "test",
            "database_url": self.database_url,
            "kafka_bootstrap": self.broker.bootstrap,
            "secret_key": DEV_SECRET_KEY,
        }


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    pg = EmbeddedPostgres(root / "pg")
    pg.start()
    pg.create_database("salesloop_test")
    broker = EmbeddedBroker(free_port(), log_path=root / "broker.log")
    broker.start()
    s = Stack(root, pg, broker, pg.uri("salesloop_test"))
    s.env = {
        "SALESLOOP_ENV": "test",
        "SALESLOOP_DATABASE_URL": s.database_url,
        "SALESLOOP_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SALESLOOP_SECRET_KEY": DEV_SECRET_KEY,
        "SALESLOOP_LOG_LEVEL": "INFO",
        # Tests date their events in years long past: the archive keeps every month of them.
        "SALESLOOP_ARCHIVE_RETENTION_DAYS": "0",
    }
    settings = s.settings()
    upgrade_head(settings)
    asyncio.run(ensure_topics(settings))
    try:
        yield s
    finally:
        broker.stop()
        pg.stop()


@pytest.fixture(scope="session")
async def engine(stack: Stack) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(stack.settings(), "salesloop-tests", pool_size=5)
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def tenants(engine: AsyncEngine) -> TenantFactory:
    return TenantFactory(engine)


@dataclass
class Services:
    stack: Stack
    ingest: ServiceProcess
    aggregator: ServiceProcess
    api: ServiceProcess
    ingest_port: int
    api_port: int
    metrics_port: int

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def aggregator_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"


@pytest.fixture(scope="session")
def services(stack: Stack) -> Iterator[Services]:
    """The three services as real processes, sharing the session's Postgres and broker."""
    ingest_port, api_port, metrics_port = free_port(), free_port(), free_port()
    logs = stack.root
    procs = Services(
        stack,
        ServiceProcess(
            "ingest",
            ["ingest", "--port", str(ingest_port)],
            stack.env,
            f"http://127.0.0.1:{ingest_port}/healthz",
            logs / "ingest.log",
        ),
        ServiceProcess(
            "aggregator",
            ["aggregator", "--metrics-port", str(metrics_port)],
            stack.env,
            f"http://127.0.0.1:{metrics_port}/healthz",
            logs / "aggregator.log",
        ),
        ServiceProcess(
            "api",
            ["api", "--port", str(api_port)],
            stack.env,
            f"http://127.0.0.1:{api_port}/healthz",
            logs / "api.log",
        ),
        ingest_port,
        api_port,
        metrics_port,
    )
    for p in (procs.ingest, procs.aggregator, procs.api):
        p.start()
    try:
        yield procs
    finally:
        for p in (procs.api, procs.ingest, procs.aggregator):
            p.stop()
        if os.environ.get("CI"):
            for name in ("ingest.log", "aggregator.log", "api.log"):
                path = logs / name
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-20:]
                    print(f"--- last lines of {name} ---", *tail, sep="\n")
