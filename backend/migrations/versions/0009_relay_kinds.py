"""relay_record: what kind of message a relay carries, whether its owner is a contract wallet, and why it
failed (ALTER)

- `kind`: the registry (or distributor) function the relay calls (`dataset`, `datasets`, `dataset_batch`,
  `compute`, `computes`, `withdraw`, `attest`, `attest_batch`, `claim`); existing rows are `dataset`;
- `owner_is_contract`: decided once per relay (eth_getCode at the request) and used by every later check
  (the reveal's wallet gas ceiling, the deny list after a revert); NULL on rows from before this revision;
- `failure`: set when the relay can no longer succeed (its commitment expired before the reveal).

Revision ID: 0009
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("relay_record") as batch:
        batch.add_column(sa.Column("kind", sa.String(24), nullable=False, server_default="dataset"))
        batch.add_column(sa.Column("owner_is_contract", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("failure", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("relay_record") as batch:
        batch.drop_column("failure")
        batch.drop_column("owner_is_contract")
        batch.drop_column("kind")
