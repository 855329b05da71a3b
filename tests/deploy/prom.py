"""A real Prometheus server (Debian's binary) scraping the test services, and its HTTP API."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import yaml

from devstack.embedded import free_port, stop_process
from tests.deploy.tooling import ALERTS, PROMETHEUS_CONFIG

T = TypeVar("T")


class QueryError(AssertionError):
    pass


def config_for(targets: Mapping[str, str], interval: str = "1s") -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its jobs pointed at `targets` (job -> base URL)."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": interval,
        "evaluation_interval": interval,
        "scrape_timeout": interval,
    }
    config["rule_files"] = [str(ALERTS)]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(targets), f"the config scrapes {sorted(jobs)}"
    for name, url in targets.items():
        jobs[name]["static_configs"] = [{"targets": [urlsplit(url).netloc]}]
    return config


class PrometheusServer:
    def __init__(self, binary: str, root: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "prometheus.log"
        config_path = root / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(
            f"prometheus not ready after {timeout_s:.0f}s: {self.log_path.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()

    async def api(self, client: httpx.AsyncClient, path: str, **params: str) -> Any:
        r = await client.get(f"{self.url}/api/v1/{path}", params=params)
        body = r.json()
        if body.get("status") != "success":
            raise QueryError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def query(self, client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
        data = await self.api(client, "query", query=expr)
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        result: list[dict[str, Any]] = data["result"]
        return result


async def poll(what: str, check: Callable[[], Awaitable[T | None]], timeout_s: float = 30.0) -> T:
    """`check()` until it returns something other than None, at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s:.0f}s"
        await asyncio.sleep(0.2)
