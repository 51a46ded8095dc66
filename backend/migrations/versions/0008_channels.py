"""x402 batch-settlement channels: channel_state, channel_usage, channel_claim (CREATE)

`channel_state`: per channel the config, the latest accepted voucher and the cumulative charged amount (the
accept step locks this row). `channel_usage`: cumulative charged and requests per (channel, model).
`channel_claim`: the rows of each `PaymentRouter.claim` transaction, stored with its outbox row.

Revision ID: 0008
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_state",
        sa.Column("chain_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("channel_id", sa.String(66), primary_key=True),
        sa.Column("router", sa.String(42), nullable=False),
        sa.Column("payer", sa.String(42), nullable=False, index=True),
        sa.Column("payer_authorizer", sa.String(42), nullable=False),
        sa.Column("receiver_authorizer", sa.String(42), nullable=False),
        sa.Column("token", sa.String(42), nullable=False),
        sa.Column("withdraw_delay", sa.BigInteger, nullable=False),
        sa.Column("salt", sa.String(66), nullable=False),
        sa.Column("max_claimable", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("charged", sa.Text, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "channel_usage",
        sa.Column("chain_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("channel_id", sa.String(66), primary_key=True),
        sa.Column("model_id", sa.String(66), primary_key=True),
        sa.Column("charged", sa.Text, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "channel_claim",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.Integer, nullable=False, index=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("channel_id", sa.String(66), nullable=False, index=True),
        sa.Column("model_id", sa.String(66), nullable=False),
        sa.Column("total_claimed", sa.Text, nullable=False),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("channel_claim")
    op.drop_table("channel_usage")
    op.drop_table("channel_state")
