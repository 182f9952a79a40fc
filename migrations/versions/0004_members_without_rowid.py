"""On SQLite, keep members in its primary-key B-tree (WITHOUT ROWID).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

A rowid table keeps its (list_id, email_key) key in a separate index, so every contact a
scan looks up or writes costs two random B-tree walks; a million-row list no longer fits
SQLite's cache and each walk reads pages. Clustering the rows on the key halves that.
Postgres keeps its heap and index as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_TS = sa.DateTime(timezone=True)
PENDING = sa.text("message_id IS NOT NULL")
COLUMNS = (
    "list_id, email_key, email, desired_subscribed, desired_user_id, sent_subscribed, "
    "sent_user_id, message_id, detected_at, attempts, next_attempt_at, last_error, dead, "
    "last_seen_run"
)


def _members(name: str, *, with_rowid: bool) -> None:
    op.create_table(
        name,
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
        sqlite_with_rowid=with_rowid,
    )


def _rebuild(*, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _members("members_rebuilt", with_rowid=with_rowid)
    op.execute(f"INSERT INTO members_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM members")
    op.drop_index("ix_members_list_message", table_name="members")
    op.drop_table("members")
    op.rename_table("members_rebuilt", "members")
    op.create_index(
        "ix_members_list_message",
        "members",
        ["list_id", "message_id"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
