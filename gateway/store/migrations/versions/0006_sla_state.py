"""SLA state, the notification outbox, missed-run watermarks

Revision ID: 0006_sla_state
Revises: 0005_token_kind
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.store.types

revision: str = "0006_sla_state"
down_revision: str | None = "0005_token_kind"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    dt = gateway.store.types.UTCDateTime
    op.create_table(
        "sla_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sla", sa.String(), nullable=False),
        sa.Column("job_uid", sa.String(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("deadline", dt(), nullable=True),
        sa.Column("predicted_end", dt(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("since", dt(), nullable=False),
        sa.Column("evaluated_at", dt(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sla", "job_uid", name="uq_sla_state"),
    )
    op.create_index("ix_sla_state_sla", "sla_state", ["sla"])
    op.create_index("ix_sla_state_job_uid", "sla_state", ["job_uid"])
    op.create_index("ix_sla_state_domain", "sla_state", ["domain"])
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("notifier", sa.String(), nullable=False),
        sa.Column("incident", sa.String(), nullable=False),
        sa.Column("event_type", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("job_uid", sa.String(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", dt(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.Column("created_at", dt(), nullable=False),
        sa.Column("sent_at", dt(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("notifier", "incident", name="uq_notification_incident"),
    )
    op.create_index("ix_notification_domain", "notification", ["domain"])
    op.create_index("ix_notification_due", "notification", ["status", "next_attempt_at"])
    op.create_table(
        "schedule_watch",
        sa.Column("job_uid", sa.String(), nullable=False),
        sa.Column("judged_until", dt(), nullable=False),
        sa.PrimaryKeyConstraint("job_uid"),
    )


def downgrade() -> None:
    op.drop_table("schedule_watch")
    op.drop_index("ix_notification_due", table_name="notification")
    op.drop_index("ix_notification_domain", table_name="notification")
    op.drop_table("notification")
    op.drop_index("ix_sla_state_domain", table_name="sla_state")
    op.drop_index("ix_sla_state_job_uid", table_name="sla_state")
    op.drop_index("ix_sla_state_sla", table_name="sla_state")
    op.drop_table("sla_state")
