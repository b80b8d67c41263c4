"""source health problems; cancels requested through Accord

Revision ID: 0004_source_problems
Revises: 0003
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.store.types


revision: str = '0004_source_problems'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('source', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('problems', sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column('checked_at', gateway.store.types.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('cancel_requested_at', gateway.store.types.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column('cancel_requested_by', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_column('cancel_requested_by')
        batch_op.drop_column('cancel_requested_at')
    with op.batch_alter_table('source', schema=None) as batch_op:
        batch_op.drop_column('checked_at')
        batch_op.drop_column('problems')
