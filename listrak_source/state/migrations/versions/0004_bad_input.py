"""What bad input needs remembered: a run's note about data it worked around.

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


def downgrade() -> None:
    op.drop_column("runs", "note")
