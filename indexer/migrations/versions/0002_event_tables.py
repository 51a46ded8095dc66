"""event tables ev_* from the deployment ABIs (idempotent; see indexer/schema.py)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import context, op

from indexer.schema import sync_event_tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    specs = context.config.attributes.get("specs") or {}
    sync_event_tables(op.get_bind(), specs)


def downgrade() -> None:
    pass  # event tables are derived data: drop the database to re-index
