"""Activity direction: messages, rows as last seen, the event ledger, each list's last pass.

Revision ID: 0008_activity
Revises: 0007_in_doubt
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_activity"
down_revision = "0007_in_doubt"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)
FALSE = sa.false()


def upgrade() -> None:
    op.create_table(
        "activity_messages",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("message_id", sa.BigInteger, primary_key=True),
        sa.Column("send_date", sa.String(40)),
        sa.Column("sent_at", UTC_TS),
        sa.Column("properties", sa.Text, nullable=False),
        sa.Column("read_at", UTC_TS),
        sa.Column("deferred", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("clicks_mark", sa.String(40)),
        sa.Column("backfilled", sa.Boolean, nullable=False, server_default=FALSE),
    )
    op.create_index("ix_activity_messages_sent", "activity_messages", ["list_id", "sent_at"])
    op.create_table(
        "activity_rows",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("message_id", sa.BigInteger, primary_key=True),
        sa.Column("email_key", sa.String(320), primary_key=True),
        sa.Column("send_date", sa.String(40)),
        sa.Column("opened", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("bounced", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("abused", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("order_total", sa.Float, nullable=False, server_default="0"),
        sa.Column("click_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "activity_events",
        sa.Column("message_id", sa.String(36), primary_key=True),
        sa.Column("list_id", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("fact", sa.Text, nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("occurred_at", UTC_TS, nullable=False),
        sa.Column("properties", sa.Text, nullable=False),
        sa.Column("detected_at", UTC_TS, nullable=False),
        sa.Column("sent", sa.Boolean, nullable=False, server_default=FALSE),
        sa.Column("sent_at", UTC_TS),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTC_TS),
        sa.Column("last_error", sa.Text),
        sa.Column("dead", sa.Boolean, nullable=False, server_default=FALSE),
    )
    op.create_index(
        "ix_activity_events_unsent",
        "activity_events",
        ["list_id", "message_id"],
        sqlite_where=sa.text("sent = 0"),
        postgresql_where=sa.text("sent = false"),
    )
    op.create_index("ix_activity_events_email", "activity_events", ["email_key"])
    op.create_table(
        "activity_lists",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("last_pass_at", UTC_TS),
        sa.Column("status", sa.String(16)),
        sa.Column("error", sa.Text),
        sa.Column("open_messages", sa.Integer, nullable=False, server_default="0"),
        sa.Column("deferred", sa.Integer, nullable=False, server_default="0"),
        sa.Column("unsub_mark", sa.String(40)),
    )


def downgrade() -> None:
    op.drop_table("activity_lists")
    op.drop_index("ix_activity_events_email", table_name="activity_events")
    op.drop_index("ix_activity_events_unsent", table_name="activity_events")
    op.drop_table("activity_events")
    op.drop_table("activity_rows")
    op.drop_index("ix_activity_messages_sent", table_name="activity_messages")
    op.drop_table("activity_messages")
