"""The audience push's memory: the unchecks sent, by time, for the mass-flip guard's window,
and how many read-backs in a row found a value Listrak accepted but did not apply.

Revision ID: 0009_audience_guard
Revises: 0008_activity
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_audience_guard"
down_revision = "0008_activity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per accepted request and field that unchecked boxes: a mass exit trickling in
    # over many pushes is judged over push.flip_window, not push by push.
    op.create_table(
        "audience_unchecks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("list_id", sa.BigInteger, nullable=False),
        sa.Column("field_id", sa.BigInteger, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_audience_unchecks_field", "audience_unchecks", ["list_id", "field_id", "sent_at"]
    )
    op.add_column(
        "audience_values",
        sa.Column("mismatches", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("audience_values", "mismatches")
    op.drop_index("ix_audience_unchecks_field", table_name="audience_unchecks")
    op.drop_table("audience_unchecks")
