"""Apply Alembic migrations (on server start and `morphml-server migrate`)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from sqlalchemy.engine import Engine

from alembic import command

# Any constant works; it only has to be the same for every replica.
MIGRATION_LOCK_ID = 7_343_201


def script_location() -> Path:
    """The Alembic scripts: server/alembic/ in a wheel (setup.py puts the repository's alembic/
    there), else alembic/ beside server/ (a checkout, or an editable install of one). Looking for
    env.py keeps site-packages/alembic, the Alembic library itself, from ever being taken."""
    package = Path(__file__).resolve().parent
    candidates = (package / "alembic", package.parent / "alembic")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise RuntimeError(f"the database migrations are missing (searched {searched})")


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Migrate to the latest revision; replicas starting together on Postgres take turns."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()
        try:
            command.upgrade(alembic_config(connection), "head")
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                connection.commit()
