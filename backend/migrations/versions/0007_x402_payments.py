"""x402 serve-first payments: x402_payment (each accepted payment and its settlement outcome), x402_payer
(unsettled exposure and failed settlements per payer), x402_batch (one settleExactBatch outbox transaction)

Revision ID: 0007
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "x402_payment",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("scheme", sa.String(32), nullable=False),
        sa.Column("payer", sa.String(42), nullable=False),
        sa.Column("nonce", sa.String(66), nullable=False),
        sa.Column("amount", sa.Text, nullable=False),
        sa.Column("model_id", sa.String(66), nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("authorization", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.Integer, nullable=True),
        sa.Column("tx_hash", sa.String(66)),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("chain_id", "payer", "nonce", name="uq_x402_payment_nonce"),
    )
    op.create_index("ix_x402_payment_payer", "x402_payment", ["payer"])
    op.create_index("ix_x402_payment_status", "x402_payment", ["status"])
    op.create_index("ix_x402_payment_batch_id", "x402_payment", ["batch_id"])
    op.create_table(
        "x402_payer",
        sa.Column("chain_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("payer", sa.String(42), primary_key=True),
        sa.Column("unsettled", sa.Text, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("failed_amount", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "x402_batch",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox_tx.id"), nullable=False, unique=True),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_x402_batch_status", "x402_batch", ["status"])


def downgrade() -> None:
    op.drop_index("ix_x402_batch_status", table_name="x402_batch")
    op.drop_table("x402_batch")
    op.drop_table("x402_payer")
    op.drop_index("ix_x402_payment_batch_id", table_name="x402_payment")
    op.drop_index("ix_x402_payment_status", table_name="x402_payment")
    op.drop_index("ix_x402_payment_payer", table_name="x402_payment")
    op.drop_table("x402_payment")
