"""`salesloop dev`'s state folder: its lock, the children it started, `dev.env`, and the demo tenant's
credentials, which survive restarts as long as they still authenticate.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.db import create_engine
from services.core.kafka import ensure_topics
from services.core.models import ConsumerOffset
from services.core.settings import DEV_SECRET_KEY, Settings
from services.core.tenancy import (
    SCOPES,
    TenancyError,
    create_key,
    create_tenant,
    get_secret,
    get_tenant,
    lookup_key,
    set_secret,
)

DEMO_TENANT = "demo"
INGEST_SCOPES = frozenset({"ingest"})
API_SCOPES = SCOPES - INGEST_SCOPES
# dev.env is read by bash (`set -a; . dev.env`) and by `docker run --env-file`, which takes values
# literally: only characters that mean nothing to either may appear, so no quoting is ever needed.
ENV_VALUE = re.compile(r"[A-Za-z0-9_@%+=:,./?-]*")


class DevError(Exception):
    """Something the person running `salesloop dev` can act on; reported without a traceback."""


def format_env(values: Mapping[str, str]) -> str:
    unsafe = [name for name, value in values.items() if not ENV_VALUE.fullmatch(value)]
    if unsafe:
        raise DevError(
            f"cannot write {', '.join(unsafe)} to dev.env without quoting; "
            "use a --state-dir whose path has only letters, digits and ._-/"
        )
    return "".join(f"{name}={value}\n" for name, value in values.items())


def parse_env(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            out[name.strip()] = value.strip()
    return out


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """One `salesloop dev` per state folder; the kernel drops the lock if the process dies."""
    path = state_dir / "dev.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            raise DevError(
                f"another `salesloop dev` (pid {holder}) already runs on {state_dir}; "
                "stop it first, or give this one its own --state-dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class Children:
    """The pids of the processes a run started, kept on disk: a run killed with SIGKILL cannot stop
    its children, so the next run on the same folder does (matching the start time, not just the pid)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[str] = []

    def add(self, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        with contextlib.suppress(psutil.Error):
            self._lines.append(f"{proc.pid} {psutil.Process(proc.pid).create_time()!r}")
        self.path.write_text("".join(f"{line}\n" for line in self._lines))

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)

    def stop_leftovers(self) -> int:
        """Stop what an earlier run on this folder left running; returns how many there were."""
        procs = []
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        for line in lines:
            pid, _, created = line.partition(" ")
            with contextlib.suppress(psutil.Error, ValueError):
                proc = psutil.Process(int(pid))
                if proc.create_time() == float(created):
                    procs.append(proc)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        self.forget()
        return len(procs)


async def _forget_consumer_offsets(engine: AsyncEngine, settings: Settings) -> None:
    # The dev broker keeps its log in memory, so offsets stored by a previous run point into a log
    # that no longer exists; the aggregator must start from the beginning of the new one.
    async with engine.begin() as conn:
        await conn.execute(
            delete(ConsumerOffset).where(ConsumerOffset.consumer_group == settings.consumer_group)
        )


async def _key(engine: AsyncEngine, previous: str | None, scopes: frozenset[str]) -> str:
    """The key from the last run's dev.env if it still authenticates with these scopes, else a new one."""
    if previous:
        info = await lookup_key(engine, previous)
        if info is not None and info.tenant == DEMO_TENANT and info.scopes == scopes:
            return previous
    return await create_key(engine, DEMO_TENANT, sorted(scopes))


async def _webhook_secret(engine: AsyncEngine) -> str:
    with contextlib.suppress(ValueError):
        existing = await get_secret(engine, DEV_SECRET_KEY, DEMO_TENANT, "webhooks")
        if existing:
            return existing
    # Standard Webhooks secrets are "whsec_" + base64 of the key bytes.
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    await set_secret(engine, DEV_SECRET_KEY, DEMO_TENANT, "webhooks", secret)
    return secret


async def provision(settings: Settings, previous: Mapping[str, str]) -> dict[str, str]:
    await ensure_topics(settings)
    engine = create_engine(settings, "salesloop-dev", pool_size=2)
    try:
        await _forget_consumer_offsets(engine, settings)
        if await get_tenant(engine, DEMO_TENANT) is None:
            with contextlib.suppress(TenancyError):
                await create_tenant(engine, DEMO_TENANT, "USD", "UTC")
        return {
            "SALESLOOP_INGEST_KEY": await _key(engine, previous.get("SALESLOOP_INGEST_KEY"), INGEST_SCOPES),
            "SALESLOOP_API_KEY": await _key(engine, previous.get("SALESLOOP_API_KEY"), API_SCOPES),
            "SALESLOOP_WEBHOOK_SECRET": await _webhook_secret(engine),
        }
    finally:
        await engine.dispose()


def write_env(env_path: Path, values: Mapping[str, str]) -> str:
    text = format_env(values)
    tmp = env_path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    # Keys are credentials: the file is the owner's only, from its first byte.
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write(f"# load with: set -a; . {env_path}; set +a\n{text}")
    tmp.replace(env_path)
    return text
