"""relay_record: the commit-reveal registration's reveal (reveal_data, reveal_outbox_id) (ALTER)

A relayed dataset registration is now two transactions: `commit([commitment])`, carried by `outbox_id`,
then, once that is mined, `registerDatasetFor(..., salt, ...)`, whose calldata is `reveal_data` (kept from
the request so a restart can still reveal) and whose outbox row is `reveal_outbox_id` (NULL until it is
enqueued).

Revision ID: 0004
Revises: 0003 (re-chained after 0003_relay_limits at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("relay_record") as batch:
        batch.add_column(sa.Column("reveal_data", sa.Text, nullable=True))
        batch.add_column(sa.Column("reveal_outbox_id", sa.Integer, nullable=True))  # an outbox_tx.id


def downgrade() -> None:
    with op.batch_alter_table("relay_record") as batch:
        batch.drop_column("reveal_outbox_id")
        batch.drop_column("reveal_data")
