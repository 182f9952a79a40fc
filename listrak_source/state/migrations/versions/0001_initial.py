"""Initial schema: members, runs, leases, rejects, list_state.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Migrations are frozen history: they spell out their columns instead of importing
# the live schema, so a later schema edit cannot rewrite what 0001 did.
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "members",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("email_key", sa.String(320), primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("desired_subscribed", sa.Boolean, nullable=False),
        sa.Column("desired_user_id", sa.Text),
        sa.Column("sent_subscribed", sa.Boolean),
        sa.Column("sent_user_id", sa.Text),
        sa.Column("message_id", sa.String(36)),
        sa.Column("detected_at", UTC_TS),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTC_TS),
        sa.Column("last_error", sa.Text),
        sa.Column("dead", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("last_seen_run", sa.Integer),
    )
    pending = sa.text("message_id IS NOT NULL")
    op.create_index(
        "ix_members_pending",
        "members",
        ["list_id", "email_key"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_index(
        "ix_members_message_id",
        "members",
        ["message_id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("list_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("full_scan", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("finished_at", UTC_TS),
        sa.Column("status", sa.String(16), nullable=False),
        *[
            sa.Column(name, sa.Integer, nullable=False, server_default="0")
            for name in (
                "scanned",
                "subscribed",
                "unsubscribed",
                "user_id_changed",
                "rejected",
                "delivered",
                "failed",
            )
        ],
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_runs_list_started", "runs", ["list_id", "started_at"])
    op.create_table(
        "leases",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UTC_TS, nullable=False),
    )
    op.create_table(
        "rejects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("list_id", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
    )
    op.create_index("ix_rejects_list_run", "rejects", ["list_id", "run_id"])
    op.create_table(
        "list_state",
        sa.Column("list_id", sa.BigInteger, primary_key=True),
        sa.Column("last_full_scan_at", UTC_TS),
        sa.Column("high_water_mark", UTC_TS),
    )


def downgrade() -> None:
    for table in ("list_state", "rejects", "leases", "runs", "members"):
        op.drop_table(table)
