"""What bad input needs remembered: a run's note, which full scans missed a subscriber, and
each list's trait with the old ones a rename still removes.

Revision ID: 0005_bad_input
Revises: 0004_locks
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_bad_input"
down_revision = "0004_locks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Something Listrak sent that the run worked around (a date yet to come), for status.
    op.add_column("runs", sa.Column("note", sa.Text))
    # The full scan that last missed a subscriber, and a list's last complete full scan:
    # a subscriber two consecutive full scans missed is confirmed gone.
    op.add_column("members", sa.Column("missed_run", sa.Integer))
    op.add_column("list_state", sa.Column("last_full_run", sa.Integer))
    # The trait a list's messages carry, so a renamed one in the config is noticed.
    op.add_column("list_state", sa.Column("trait", sa.String(255)))
    op.add_column("list_state", sa.Column("retired_trait", sa.Text))
    _first_lines_of_stored_errors()


def _first_lines_of_stored_errors() -> None:
    """Earlier versions stored a database error whole: its SQL and parameters (emails)
    after the first line. Keep the first line only."""
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("error", sa.Text))
    conn = op.get_bind()
    rows = conn.execute(sa.select(runs.c.id, runs.c.error).where(runs.c.error.like("%\n%")))
    for run_id, error in rows.all():
        first = error.strip().splitlines()[0] if error.strip() else None
        conn.execute(sa.update(runs).where(runs.c.id == run_id).values(error=first))


def downgrade() -> None:
    op.drop_column("list_state", "retired_trait")
    op.drop_column("list_state", "trait")
    op.drop_column("list_state", "last_full_run")
    op.drop_column("members", "missed_run")
    op.drop_column("runs", "note")
