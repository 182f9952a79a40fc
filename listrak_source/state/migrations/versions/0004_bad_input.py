"""What bad input needs remembered: a run's note, and which full scans missed a subscriber.

Revision ID: 0004_bad_input
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_bad_input"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Something Listrak sent that the run worked around (a date yet to come), for status.
    op.add_column("runs", sa.Column("note", sa.Text))
    # The full scan that last missed a subscriber, and a list's last complete full scan:
    # a subscriber two consecutive full scans missed is confirmed gone.
    op.add_column("members", sa.Column("missed_run", sa.Integer))
    op.add_column("list_state", sa.Column("last_full_run", sa.Integer))


def downgrade() -> None:
    op.drop_column("list_state", "last_full_run")
    op.drop_column("members", "missed_run")
    op.drop_column("runs", "note")
