"""Audience direction: the event inbox, desired/sent profile-field values, counters, pushes.

Revision ID: 0006_audiences
Revises: 0005_bad_input
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_audiences"
down_revision = "0005_bad_input"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audience_inbox",
        sa.Column("message_id", sa.String(255), primary_key=True),
        sa.Column("received_at", UTC_TS, nullable=False),
        sa.Column("list_id", sa.BigInteger, nullable=False),
        sa.Column("field_id", sa.BigInteger, nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("member", sa.Boolean, nullable=False),
        sa.Column("event_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_audience_inbox_received", "audience_inbox", ["received_at"])
    op.create_index("ix_audience_inbox_email", "audience_inbox", ["email_key"])
    op.create_table(
        "audience_values",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("field_id", sa.BigInteger, primary_key=True),
        sa.Column("email_key", sa.String(320), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("desired", sa.Boolean, nullable=False),
        sa.Column("event_us", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("received_at", UTC_TS, nullable=False),
        sa.Column("sent", sa.Boolean),
        sa.Column("sent_at", UTC_TS),
        sa.Column("pending", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTC_TS),
        sa.Column("last_error", sa.Text),
        sa.Column("dead", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("readback", sa.Boolean),
        sa.Column("readback_at", UTC_TS),
        sa.Column("mismatch", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index(
        "ix_audience_values_pending",
        "audience_values",
        ["list_id", "email_key"],
        sqlite_where=sa.text("pending = 1"),
        postgresql_where=sa.text("pending"),
    )
    op.create_table(
        "audience_counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audience_pushes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("list_id", sa.BigInteger, nullable=False),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("finished_at", UTC_TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rejected", sa.Integer, nullable=False, server_default="0"),
        sa.Column("held", sa.Integer, nullable=False, server_default="0"),
        sa.Column("requests", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_audience_pushes_list", "audience_pushes", ["list_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audience_pushes_list", table_name="audience_pushes")
    op.drop_table("audience_pushes")
    op.drop_table("audience_counters")
    op.drop_index("ix_audience_values_pending", table_name="audience_values")
    op.drop_table("audience_values")
    op.drop_index("ix_audience_inbox_email", table_name="audience_inbox")
    op.drop_index("ix_audience_inbox_received", table_name="audience_inbox")
    op.drop_table("audience_inbox")
