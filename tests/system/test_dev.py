"""`salesloop dev` as a person runs it: one command starts the system, SIGTERM stops all of it."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devstack.dev import DevPorts, port_problems
from devstack.embedded import free_port, port_is_free, stop_process
from devstack.state import DevError, format_env, parse_env

START_TIMEOUT_S = 150.0
STOP_TIMEOUT_S = 60.0
REFUSE_TIMEOUT_S = 30.0
DEV_ENV_NAMES = {
    "SALESLOOP_ENV",
    "SALESLOOP_DATABASE_URL",
    "SALESLOOP_KAFKA_BOOTSTRAP",
    "SALESLOOP_INGEST_URL",
    "SALESLOOP_API_URL",
    "SALESLOOP_INGEST_KEY",
    "SALESLOOP_API_KEY",
    "SALESLOOP_WEBHOOK_SECRET",
    "SALESLOOP_SECRET_KEY",
}


def free_ports() -> DevPorts:
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    return DevPorts(*sorted(ports))


def dev_command(state_dir: Path, ports: DevPorts) -> list[str]:
    return [
        sys.executable,
        "-m",
        "services.cli",
        "dev",
        "--state-dir",
        str(state_dir),
        *(str(arg) for pair in ports.by_option().items() for arg in pair),
    ]


def clean_env() -> dict[str, str]:
    # Settings exported in the caller's shell must not leak into the dev stack.
    return {k: v for k, v in os.environ.items() if not k.startswith("SALESLOOP_")}


@dataclass
class DevRun:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    ports: DevPorts
    out: Path
    err: Path

    @property
    def env_path(self) -> Path:
        return self.state_dir / "dev.env"

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def wait_ready(self) -> dict[str, str]:
        """The env lines reach stdout once every service answered its health check and dev.env is written."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while set(parse_env(self.out.read_text(errors="replace"))) != DEV_ENV_NAMES:
            assert self.proc.poll() is None, f"salesloop dev exited {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"not ready after {START_TIMEOUT_S}s:\n{self.output()}"
            time.sleep(0.2)
        return parse_env(self.env_path.read_text())

    def descendants(self) -> list[psutil.Process]:
        procs = list(psutil.Process(self.proc.pid).children(recursive=True))
        postmaster = self.state_dir / "pg" / "postmaster.pid"
        if postmaster.exists():
            # pg_ctl detaches the postmaster, so it is no child of ours: find it by its pid file.
            procs.append(psutil.Process(int(postmaster.read_text().split()[0])))
        return procs

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(STOP_TIMEOUT_S)


@contextmanager
def running_dev(tmp_path: Path, state_dir: Path, ports: DevPorts, name: str) -> Iterator[DevRun]:
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            dev_command(state_dir, ports), cwd=tmp_path, stdout=stdout, stderr=stderr, env=clean_env()
        )
    run = DevRun(proc, state_dir, ports, out, err)
    try:
        yield run
    finally:
        stop_process(proc, STOP_TIMEOUT_S)


def refused(tmp_path: Path, state_dir: Path, ports: DevPorts) -> tuple[int, str, float]:
    start = time.monotonic()
    result = subprocess.run(
        dev_command(state_dir, ports),
        cwd=tmp_path,
        capture_output=True,
        env=clean_env(),
        timeout=REFUSE_TIMEOUT_S,
        check=False,
    )
    return result.returncode, result.stderr.decode(errors="replace"), time.monotonic() - start


def is_alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def assert_all_gone(procs: list[psutil.Process], ports: DevPorts | None = None) -> None:
    deadline = time.monotonic() + 10.0
    while (alive := [p for p in procs if is_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive == [], f"left running: {alive}"
    if ports is not None:
        bound = [port for port in ports.by_option().values() if not port_is_free(port)]
        assert bound == [], f"ports still bound: {bound}"


def post_call(env: dict[str, str], rep: str, event_id: str) -> None:
    event: dict[str, Any] = {
        "event_id": event_id,
        "type": "call.completed",
        "occurred_at": datetime.now(UTC).isoformat(),
        "rep_id": rep,
        "direction": "outbound",
        "outcome": "connected",
        "duration_s": 120,
    }
    r = httpx.post(
        f"{env['SALESLOOP_INGEST_URL']}/v1/events/demo",
        json=event,
        headers={"Authorization": f"Bearer {env['SALESLOOP_INGEST_KEY']}"},
        timeout=10.0,
    )
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1


def wait_for_dials(env: dict[str, str], rep: str, dials: int, timeout_s: float = 60.0) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    params = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}
    headers = {"Authorization": f"Bearer {env['SALESLOOP_API_KEY']}"}
    url = f"{env['SALESLOOP_API_URL']}/v1/reps/{rep}/metrics"
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = httpx.get(url, params=params, headers=headers, timeout=10.0)
        assert r.status_code in (200, 404), r.text  # 404 until the aggregator registered the rep
        if r.status_code == 200:
            body = r.json()
            if body["metrics"]["dials"] >= dials:
                return body
        time.sleep(0.2)
    raise AssertionError(f"rep {rep} never reached {dials} dials in {timeout_s}s; last answer {body}")


# --- the pure parts ------------------------------------------------------------------------------


def test_dev_env_round_trips_and_refuses_values_that_would_need_quoting() -> None:
    values = {"SALESLOOP_DATABASE_URL": "postgresql://postgres:@/salesloop?host=/tmp/x", "A": "whsec_a+b/c="}
    assert parse_env("# comment\n" + format_env(values)) == values
    for bad in ("has space", "$HOME", "quote'", 'dq"', "back`tick", "semi;colon", "~user"):
        with pytest.raises(DevError):
            format_env({"SALESLOOP_X": bad})


def test_port_problems_name_the_port_and_the_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = free_ports()
        problems = port_problems(DevPorts(free.ingest, port, free.metrics, free.kafka))
    assert problems == [f"port {port} is already in use; choose another with --api-port PORT"]
    assert port_problems(DevPorts(free.ingest, free.ingest, free.metrics, free.kafka)) == [
        f"--ingest-port and --api-port are both {free.ingest}; give each its own port"
    ]


# --- the real thing ------------------------------------------------------------------------------


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = free_ports()
        code, stderr, elapsed = refused(
            tmp_path, tmp_path / "state", DevPorts(free.ingest, free.api, port, free.kafka)
        )
    assert code != 0
    assert f"port {port} is already in use" in stderr
    assert "--metrics-port" in stderr
    assert elapsed < REFUSE_TIMEOUT_S
    assert not (tmp_path / "state" / "pg").exists(), "PostgreSQL was started although a port was taken"


@pytest.mark.slow
@pytest.mark.soak  # `make soak`; tests/test_readme.py runs `salesloop dev` in every `make test`
def test_dev_serves_the_pipeline_refuses_collisions_and_stops_cleanly(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    ports = free_ports()
    with running_dev(tmp_path, state_dir, ports, "first") as dev:
        env = dev.wait_ready()
        assert set(env) == DEV_ENV_NAMES
        assert env["SALESLOOP_INGEST_URL"] == f"http://127.0.0.1:{ports.ingest}"
        assert env["SALESLOOP_API_URL"] == f"http://127.0.0.1:{ports.api}"
        assert env["SALESLOOP_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{ports.kafka}"
        assert env["SALESLOOP_WEBHOOK_SECRET"].startswith("whsec_")
        assert oct(dev.env_path.stat().st_mode & 0o777) == "0o600"

        # The same lines on stdout, and a file both bash and `docker run --env-file` read as is.
        assert parse_env(dev.out.read_text()) == env
        for line in dev.env_path.read_text().splitlines():
            assert line.startswith("#") or re.fullmatch(r"SALESLOOP_[A-Z_]+=[^\s'\"$`\\]*", line), line
        sourced = subprocess.run(
            ["bash", "-c", 'set -a; . "$1"; set +a; env', "bash", str(dev.env_path)],
            capture_output=True,
            text=True,
            check=True,
            env={},
        ).stdout
        assert {k: v for k, v in parse_env(sourced).items() if k.startswith("SALESLOOP_")} == env

        for port in (ports.ingest, ports.api, ports.metrics):
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5.0).status_code == 200
        post_call(env, "dev-r1", "dev-call-1")
        body = wait_for_dials(env, "dev-r1", 1)
        assert body["metrics"]["dials"] == 1
        assert body["metrics"]["connects"] == 1

        # Never collide silently: not on the same state folder, not on a port in use.
        code, stderr, _ = refused(tmp_path, state_dir, free_ports())
        assert code != 0
        assert "already runs on" in stderr
        code, stderr, _ = refused(tmp_path, tmp_path / "other", ports)
        assert code != 0
        assert f"port {ports.ingest} is already in use; choose another with --ingest-port" in stderr

        procs = dev.descendants()
        assert len(procs) >= 5, f"expected 3 services, the broker and PostgreSQL: {procs}"
        assert dev.terminate() == 0, dev.output()
    assert_all_gone(procs, ports)

    # A restart on the same folder keeps the data and the keys written to dev.env; then it crashes.
    with running_dev(tmp_path, state_dir, ports, "second") as dev:
        again = dev.wait_ready()
        assert again == env
        assert wait_for_dials(again, "dev-r1", 1)["metrics"]["dials"] == 1
        post_call(again, "dev-r1", "dev-call-2")
        assert wait_for_dials(again, "dev-r1", 2)["metrics"]["dials"] == 2
        orphans = dev.descendants()
        dev.proc.kill()
        dev.proc.wait()

    # The next run stops what the killed one left behind; when one of its services dies, it says
    # so, stops the rest and exits non-zero.
    with running_dev(tmp_path, state_dir, ports, "third") as dev:
        dev.wait_ready()
        assert "left running by an earlier run" in dev.err.read_text()
        procs = dev.descendants()
        # PostgreSQL outlives a killed run and is taken over by the next one; everything else must be gone.
        assert_all_gone([p for p in orphans if p.pid not in {q.pid for q in procs}])
        aggregator = next(p for p in procs if "aggregator" in p.cmdline())
        aggregator.kill()
        assert dev.proc.wait(STOP_TIMEOUT_S) != 0
        assert "aggregator exited unexpectedly" in dev.err.read_text()
    assert_all_gone(procs, ports)
