"""Database engines and URL handling. Engines are created in each service's lifespan, never at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.core.settings import Settings

if TYPE_CHECKING:
    # Imported where an engine is made: a command that only needs a URL (salesloop import talks to
    # asyncpg itself) does not pay for importing SQLAlchemy, a third of a CPU second.
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` (what operators configure) -> the asyncpg dialect URL SQLAlchemy wants."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        return "postgresql+asyncpg://" + rest
    raise ValueError(f"SALESLOOP_DATABASE_URL must be a postgresql:// URL, not {scheme}://")


def asyncpg_dsn(url: str) -> str:
    """A DSN for asyncpg itself (it does not know the SQLAlchemy dialect suffix)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "application_name"]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))


def create_engine(settings: Settings, application_name: str, pool_size: int | None = None) -> AsyncEngine:
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(
        sqlalchemy_url(settings.database_url.get_secret_value()),
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args={"server_settings": {"application_name": application_name}, "timeout": 5},
    )


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.begin() as conn:
        yield conn
