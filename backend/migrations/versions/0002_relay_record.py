"""relay records as outbox rows: relay_record (references outbox_tx); outbox_tx.to_address nullable (CREATE)

The API's former `api_relay_records` table (own raw transaction and relayer nonce, created outside the
migrations) is dropped if present: its rows were relayed by the removed nonce counter, and the relayed
registrations themselves are on chain.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_tx") as batch:
        batch.alter_column("to_address", existing_type=sa.String(42), nullable=True)
    op.create_table(
        "relay_record",
        sa.Column("relay_id", sa.String(66), primary_key=True),  # keccak256(signature)
        sa.Column("message_digest", sa.String(66), nullable=False, unique=True),
        sa.Column("request_digest", sa.String(66), nullable=False),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("owner", sa.String(42), nullable=False),
        sa.Column("content_hash", sa.String(66), nullable=False, index=True),
        sa.Column("owner_nonce", sa.Text, nullable=False),
        sa.Column("deadline", sa.Text, nullable=False),
        sa.Column("relayer", sa.String(42), nullable=False),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox_tx.id"), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.execute("DROP TABLE IF EXISTS api_relay_records")


def downgrade() -> None:
    op.drop_table("relay_record")
    with op.batch_alter_table("outbox_tx") as batch:
        batch.alter_column("to_address", existing_type=sa.String(42), nullable=False)
