"""trained_model: the embedded model's training runs, artefact hash next to model id and manifest (CREATE)

Revision ID: 0006
Revises: 0007 (after the x402 tables; the id 0006 was assigned before they merged)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trained_model",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chain_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(100), nullable=False, index=True),
        sa.Column("model_id", sa.String(66), nullable=False),
        sa.Column("artefact_hash", sa.String(66), nullable=False),
        sa.Column("artefact_size", sa.BigInteger, nullable=False),
        sa.Column("dataset_ids", sa.Text, nullable=False),
        sa.Column("weights", sa.Text, nullable=False),
        sa.Column("tokens", sa.Text, nullable=False),
        sa.Column("outbox_id", sa.Integer, sa.ForeignKey("outbox_tx.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("chain_id", "model_id", "artefact_hash", name="uq_trained_model_artefact"),
    )


def downgrade() -> None:
    op.drop_table("trained_model")
