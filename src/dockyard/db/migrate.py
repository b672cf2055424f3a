"""Bring a database's schema to the newest revision with Alembic."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

_MIGRATIONS = Path(__file__).parent / "migrations"


def sync_url(url: str) -> str:
    """The blocking-driver URL for an async one (Alembic runs synchronously)."""
    return url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def upgrade_database(url: str) -> None:
    """Apply every pending migration; a no-op on an up-to-date database."""
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
