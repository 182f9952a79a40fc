"""Index pending message ids by list, so accepting a chunk is a lookup, not a list scan.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PENDING = sa.text("message_id IS NOT NULL")


def upgrade() -> None:
    # mark_sent filters on list_id and message_id together; with only (message_id)
    # indexed, SQLite preferred the (list_id, email_key) index and walked every pending
    # row of the list once per accepted chunk: quadratic in a first sync.
    op.drop_index("ix_members_message_id", table_name="members")
    op.create_index(
        "ix_members_list_message",
        "members",
        ["list_id", "message_id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_members_list_message", table_name="members")
    op.create_index(
        "ix_members_message_id",
        "members",
        ["message_id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )
