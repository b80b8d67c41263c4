"""API tokens have a kind: a person's token or an AI agent's

Revision ID: 0005_token_kind
Revises: 0004_source_problems
Create Date: 2026-12-10 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_token_kind'
down_revision: str | None = '0004_source_problems'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('kind', sa.String(), nullable=False, server_default=sa.text("'person'"))
        )


def downgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('kind')
