"""automation outbox: firings of Dependency and RetryPolicy documents

Revision ID: 0007_dependency_outbox
Revises: 0006_sla_state
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.store.types


revision: str = '0007_dependency_outbox'
down_revision: str | None = '0006_sla_state'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'firing',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(), nullable=False),
        sa.Column('kind', sa.String(), nullable=False),
        sa.Column('rule', sa.String(), nullable=False),
        sa.Column('action', sa.String(), nullable=False),
        sa.Column('job_uid', sa.String(), nullable=False),
        sa.Column('run_uid', sa.String(), nullable=True),
        sa.Column('domain', sa.String(), nullable=False),
        sa.Column('subject', sa.String(), nullable=False),
        sa.Column('upstream_runs', sa.JSON(), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(), nullable=False),
        sa.Column('chain_attempt', sa.Integer(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.Column('claimed_by', sa.String(), nullable=True),
        sa.Column('claimed_at', gateway.store.types.UTCDateTime(), nullable=True),
        sa.Column('approval_id', sa.Integer(), nullable=True),
        sa.Column('result_run_uid', sa.String(), nullable=True),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('observed_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.Column('created_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.Column('fired_at', gateway.store.types.UTCDateTime(), nullable=True),
        sa.Column('updated_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key', name='uq_firing_key'),
    )
    op.create_index('ix_firing_status_due', 'firing', ['status', 'next_attempt_at'])
    op.create_index('ix_firing_rule', 'firing', ['kind', 'rule', 'created_at'])
    op.create_index('ix_firing_job_uid', 'firing', ['job_uid'])
    op.create_index('ix_firing_result_run_uid', 'firing', ['result_run_uid'])


def downgrade() -> None:
    op.drop_index('ix_firing_result_run_uid', table_name='firing')
    op.drop_index('ix_firing_job_uid', table_name='firing')
    op.drop_index('ix_firing_rule', table_name='firing')
    op.drop_index('ix_firing_status_due', table_name='firing')
    op.drop_table('firing')
