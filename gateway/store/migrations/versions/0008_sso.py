"""single sign-on: identities, console sessions, logins under way

Revision ID: 0008_sso
Revises: 0007_dependency_outbox
Create Date: 2026-12-01 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.store.types


revision: str = '0008_sso'
down_revision: str | None = '0007_dependency_outbox'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sso_identity',
        sa.Column('subject', sa.String(), nullable=False),
        sa.Column('claims', sa.JSON(), nullable=False),
        sa.Column('digest', sa.String(), nullable=False),
        sa.Column('seen_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('subject'),
    )
    op.create_table(
        'sso_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(), nullable=False),
        sa.Column('subject', sa.String(), nullable=False),
        sa.Column('name', sa.String(), nullable=False),
        sa.Column('created_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.Column('expires_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.Column('revoked_at', gateway.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_session_subject'), ['subject'], unique=False)
    op.create_table(
        'sso_login',
        sa.Column('state_hash', sa.String(), nullable=False),
        sa.Column('nonce', sa.String(), nullable=False),
        sa.Column('return_to', sa.String(), nullable=False),
        sa.Column('expires_at', gateway.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('state_hash'),
    )


def downgrade() -> None:
    op.drop_table('sso_login')
    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sso_session_subject'))
    op.drop_table('sso_session')
    op.drop_table('sso_identity')
