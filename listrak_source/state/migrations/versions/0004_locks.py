"""Drop the leases table: per-list locks now come from the database's own primitives.

Revision ID: 0004_locks
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_locks"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A lease outlived a killed holder by its time to live; an advisory lock (PostgreSQL)
    # or an flock() beside the SQLite file (see state/locks.py) dies with it instead.
    op.drop_table("leases")


def downgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
