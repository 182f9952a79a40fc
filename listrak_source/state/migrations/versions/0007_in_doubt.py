"""Whether Segment may hold something other than what it last accepted for a row.

Revision ID: 0007_in_doubt
Revises: 0006_audiences
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_in_doubt"
down_revision = "0006_audiences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A row carrying a message may have had it posted by an earlier version, which kept
    # no record of that: count each such row as in doubt, so a change back is sent.
    op.add_column(
        "members",
        sa.Column("in_doubt", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    members = sa.table(
        "members", sa.column("message_id", sa.String), sa.column("in_doubt", sa.Boolean)
    )
    op.execute(sa.update(members).where(members.c.message_id.is_not(None)).values(in_doubt=True))


def downgrade() -> None:
    op.drop_column("members", "in_doubt")
