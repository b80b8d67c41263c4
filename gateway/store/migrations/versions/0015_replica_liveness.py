"""a replica says whether it holds its liveness lock (early failover)

Revision ID: 0015_replica_liveness
Revises: 0014_reliability
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_replica_liveness"
down_revision: str | None = "0014_reliability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("replica", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("liveness", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("replica", schema=None) as batch_op:
        batch_op.drop_column("liveness")
