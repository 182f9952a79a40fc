"""Drop the (list_id, email_key) pending index: pending rows are read in message-id order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every new contact was inserted into this index at a random place; delivery now pages
    # through ix_members_list_message instead, so a first sync maintains one B-tree less.
    op.drop_index("ix_members_pending", table_name="members")


def downgrade() -> None:
    pending = sa.text("message_id IS NOT NULL")
    op.create_index(
        "ix_members_pending",
        "members",
        ["list_id", "email_key"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
