"""rewards engine: reward_epoch state machine, transaction outbox (outbox_tx, outbox_attempt)

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per (chain, epoch): closed -> computed -> proposed -> accepted (backend/rewards/lifecycle.py).
    op.create_table(
        "reward_epoch",
        sa.Column("chain_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("end_block", sa.BigInteger, nullable=False),
        sa.Column("policy_hash", sa.String(66), nullable=False),
        sa.Column("root", sa.String(66)),
        sa.Column("epoch_total", sa.Text),  # wei, decimal
        sa.Column("total_cumulative", sa.Text),  # wei, decimal
        sa.Column("leaf_count", sa.Integer),
        sa.Column("allocation_file", sa.Text),  # content-addressed file name under <data_dir>/rewards/
        sa.Column("uri", sa.Text),
        sa.Column("propose_tx", sa.Integer),  # outbox_tx.id
        sa.Column("accept_tx", sa.Integer),
        sa.Column("valid_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    # A transaction is signed and stored here before it is broadcast; its nonce is fixed at that moment.
    op.create_table(
        "outbox_tx",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),  # idempotency key
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("sender", sa.String(42), nullable=False),
        sa.Column("nonce", sa.BigInteger, nullable=False),
        sa.Column("to_address", sa.String(42), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("gas", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # pending | confirmed | failed
        sa.Column("mined_hash", sa.String(66)),
        sa.Column("block_number", sa.BigInteger),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("chain_id", "sender", "nonce", name="uq_outbox_tx_nonce"),
    )
    # Every signed version of an outbox transaction (fee bumps replace, same nonce).
    op.create_table(
        "outbox_attempt",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox_tx.id"), nullable=False, index=True),
        sa.Column("tx_hash", sa.String(66), nullable=False, unique=True),
        sa.Column("raw_tx", sa.Text, nullable=False),
        sa.Column("max_fee", sa.Text, nullable=False),
        sa.Column("priority_fee", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbox_attempt")
    op.drop_table("outbox_tx")
    op.drop_table("reward_epoch")
