"""The 0002 migration's read-only role, in a PostgreSQL cluster of its own (roles are cluster-wide):
its login follows SALESLOOP_GRAFANA_DB_PASSWORD, an existing role is taken over, downgrade drops it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from alembic import command

from devstack.embedded import EmbeddedPostgres
from services.core.migrate import alembic_config
from services.core.settings import DEV_SECRET_KEY, Settings

ROLE = "salesloop_grafana"
PASSWORD = "it's a s3cret $password: with 'quotes'"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("grafana-role") / "pg")
    pg.start()
    try:
        for name in ("first", "second"):
            pg.create_database(name)
        # The role must present its password; everyone else keeps the cluster's trust.
        hba = pg.data_dir / "pg_hba.conf"
        hba.write_text(f"local all {ROLE} scram-sha-256\n" + hba.read_text())
        fetch(pg, "first", "SELECT pg_reload_conf()")
        yield pg
    finally:
        pg.stop()


def migrate(pg: EmbeddedPostgres, database: str, revision: str, downgrade: bool = False) -> None:
    settings = Settings(env="test", database_url=pg.uri(database), secret_key=DEV_SECRET_KEY)
    cfg = alembic_config(settings)
    if downgrade:
        command.downgrade(cfg, revision)
    else:
        command.upgrade(cfg, revision)


def fetch(
    pg: EmbeddedPostgres, database: str, sql: str, user: str | None = None, password: str | None = None
) -> list[asyncpg.Record]:
    """`sql` over the cluster's Unix socket, as the superuser or as `user` with `password`."""
    uri = urlsplit(pg.uri(database))

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(
            host=parse_qs(uri.query)["host"][0],
            user=user or uri.username,
            password=password,
            database=database,
        )
        try:
            rows: list[asyncpg.Record] = await conn.fetch(sql)
            return rows
        finally:
            await conn.close()

    return asyncio.run(run())


def role(pg: EmbeddedPostgres) -> asyncpg.Record | None:
    rows = fetch(pg, "first", f"SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = '{ROLE}'")
    return rows[0] if rows else None


def read_rollups(pg: EmbeddedPostgres, database: str, password: str) -> int:
    (row,) = fetch(pg, database, "SELECT count(*) FROM rollup_rep_daily", ROLE, password)
    return int(row[0])


def test_role_lifecycle(cluster: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch) -> None:
    # A role made beforehand (by a DBA, or by another database of the cluster) is taken over.
    fetch(cluster, "first", f"CREATE ROLE {ROLE} NOLOGIN")
    monkeypatch.setenv("SALESLOOP_ENV", "test")
    monkeypatch.setenv("SALESLOOP_GRAFANA_DB_PASSWORD", PASSWORD)
    migrate(cluster, "first", "0002")
    created = role(cluster)
    assert created is not None
    assert created["rolcanlogin"]
    assert created["rolpassword"].startswith("SCRAM-SHA-256$")  # sent hashed, never in plain text
    assert read_rollups(cluster, "first", PASSWORD) == 0
    with pytest.raises(asyncpg.InvalidPasswordError):
        read_rollups(cluster, "first", "not the password")
    for table in ("events", "tenant_secrets", "api_keys"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            fetch(cluster, "first", f"SELECT count(*) FROM {table}", ROLE, PASSWORD)

    # Without a configured password an existing role keeps the login it has.
    monkeypatch.delenv("SALESLOOP_GRAFANA_DB_PASSWORD")
    migrate(cluster, "second", "0002")
    assert read_rollups(cluster, "second", PASSWORD) == 0

    # Downgrading one database revokes its grants; the role stays while another database uses it.
    migrate(cluster, "first", "0001", downgrade=True)
    assert role(cluster) is not None
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        read_rollups(cluster, "first", PASSWORD)
    migrate(cluster, "second", "0001", downgrade=True)
    assert role(cluster) is None

    # Created afresh without a password, the role cannot log in at all.
    migrate(cluster, "first", "0002")
    fresh = role(cluster)
    assert fresh is not None
    assert (fresh["rolcanlogin"], fresh["rolpassword"]) == (False, None)
    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
        read_rollups(cluster, "first", PASSWORD)
