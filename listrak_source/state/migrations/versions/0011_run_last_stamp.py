"""Each run keeps the latest timestamp it gave a message, so that a list's next run never
stamps one before it, whatever this host's clock says by then.

Revision ID: 0011_run_last_stamp
Revises: 0010_contact_digest
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_run_last_stamp"
down_revision = "0010_contact_digest"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null for the runs before it: their starts and ends bound their stamps instead.
    op.add_column("runs", sa.Column("last_stamp", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("runs", "last_stamp")
