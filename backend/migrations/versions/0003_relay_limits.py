"""the relayer's limits: relay_budget (daily gas, global and per account), relay_charge (one per relayed
transaction: its reservation, settlement and pending owner nonce), relay_denied (contract wallets that made
the relayer pay for a revert)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_budget",
        sa.Column("chain_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("day", sa.BigInteger, primary_key=True, autoincrement=False),  # unix seconds // 86400
        sa.Column("scope", sa.String(42), primary_key=True),  # "*" or an owner address
        sa.Column("reserved_gas", sa.BigInteger, nullable=False),
        sa.Column("spent_gas", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "relay_charge",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("relay_id", sa.String(66), nullable=False),
        sa.Column("owner", sa.String(42), nullable=False),
        sa.Column("owner_nonce", sa.Text, nullable=False),
        sa.Column("pending_nonce", sa.Text),  # the owner nonce while pending, NULL once settled
        sa.Column("outbox_id", sa.Integer, nullable=False, unique=True),
        sa.Column("day", sa.BigInteger, nullable=False),
        sa.Column("reserved_gas", sa.BigInteger, nullable=False),
        sa.Column("gas_used", sa.BigInteger),
        sa.Column("wei", sa.Text),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("chain_id", "owner", "pending_nonce", name="uq_relay_charge_pending_nonce"),
    )
    op.create_table(
        "relay_denied",
        sa.Column("chain_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(42), primary_key=True),
        sa.Column("tx_hash", sa.String(66), nullable=False),
        sa.Column("gas_used", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("relay_denied")
    op.drop_table("relay_charge")
    op.drop_table("relay_budget")
