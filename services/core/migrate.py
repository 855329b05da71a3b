"""`salesloop migrate`: Alembic upgrade head (sync: Alembic's env runs its own event loop)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from services.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(settings: Settings) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = settings.database_url.get_secret_value()
    return cfg


def upgrade_head(settings: Settings) -> None:
    command.upgrade(alembic_config(settings), "head")


def check(settings: Settings) -> None:
    """Raises if the models and the migrations disagree."""
    command.check(alembic_config(settings))
