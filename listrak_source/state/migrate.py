"""Alembic, imported only when a schema has to be checked against history or upgraded."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection


def _config(scripts: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(scripts))
    return config


def head(scripts: Path) -> str | None:
    """The head revision of the migration scripts."""
    return ScriptDirectory.from_config(_config(scripts)).get_current_head()


def is_known(scripts: Path, revision: str) -> bool:
    """Whether a revision is one of ours (older than head, or head itself)."""
    try:
        return ScriptDirectory.from_config(_config(scripts)).get_revision(revision) is not None
    except CommandError:
        return False


def upgrade_to(scripts: Path, connection: Connection, revision: str) -> None:
    """Run the migrations up to `revision` on the caller's connection and transaction."""
    config = _config(scripts)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def upgrade_to_head(scripts: Path, connection: Connection) -> None:
    """Run every migration on the caller's connection and transaction."""
    upgrade_to(scripts, connection, "head")
