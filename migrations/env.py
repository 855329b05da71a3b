"""Alembic environment: async engine from SALESLOOP_DATABASE_URL (or the URL set on the config)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.core.db import sqlalchemy_url
from services.core.models import Base
from services.core.models.archive import PARTITION_NAME
from services.core.settings import Settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or Settings().database_url.get_secret_value()
    return sqlalchemy_url(url)


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # The archive's monthly partitions are made and dropped by the aggregator, not by migrations.
    return not (type_ == "table" and name is not None and PARTITION_NAME.match(name))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(
        _url(),
        poolclass=pool.NullPool,
        connect_args={"server_settings": {"application_name": "salesloop-migrate"}},
    )
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
