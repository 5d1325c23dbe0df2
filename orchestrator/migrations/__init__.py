"""Alembic migrations, configured in code (no ``alembic.ini``) and shipped in the package.

To write a new migration after changing ``orchestrator/models.py``::

    python -c "from orchestrator.migrations import revision; revision('what changed', 'sqlite:///x.db')"

(on a database at head), then review the generated file in ``versions/``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An alembic config for this package; migrations run on ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def revision(message: str, url: str) -> None:
    """Autogenerate a migration by comparing the models with the database at ``url``."""
    command.revision(alembic_config(url=url), message=message, autogenerate=True)
