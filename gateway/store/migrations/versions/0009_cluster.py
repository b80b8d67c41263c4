"""replicas and leases of a gateway cluster on PostgreSQL

Revision ID: 0009_cluster
Revises: 0008_sso
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.store.types


revision: str = '0009_cluster'
down_revision: str | None = '0008_sso'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'replica',
        sa.Column('id', sa.String(), nullable=False),
        sa.Column('url', sa.String(), nullable=True),
        sa.Column('host', sa.String(), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.Column('heartbeat_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'lease',
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('holder', sa.String(), nullable=True),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.Column('acquired_at', gateway.store.types.UTCDateTime(), nullable=True),
        sa.Column('renewed_at', gateway.store.types.UTCDateTime(), nullable=True),
        sa.Column('expires_at', gateway.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('lease')
    op.drop_table('replica')
