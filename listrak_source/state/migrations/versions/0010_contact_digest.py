"""Each subscribed row keeps the digest of the bytes Listrak sent for its contact, so a
re-sync recognizes an unchanged contact without decoding it.

Revision ID: 0010_contact_digest
Revises: 0009_audience_guard
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_contact_digest"
down_revision = "0009_audience_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Null until a scan stores a digest: every contact is then decoded, as before.
    op.add_column("members", sa.Column("digest", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("members", "digest")
