"""x402 batch-settlement channels: channel_request, the requests in flight (CREATE)

One row per channel request whose charge was accepted and whose route has neither served it nor failed; the
claimer claims a channel's charged amount minus these rows' amounts, so a request that ends void is never
claimed (backend/api/x402/channel.py, backend/api/x402/claimer.py).

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_request",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("channel_id", sa.String(66), nullable=False, index=True),
        sa.Column("model_id", sa.String(66), nullable=False),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("accepted_at", sa.BigInteger, nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("channel_request")
