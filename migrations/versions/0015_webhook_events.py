"""status callbacks: the outbox of status events, a message's own callback URL

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

Each status change of a message writes one row per place its event goes (``WA_STATUS_WEBHOOK_URL``,
the message's ``callback_url``, ``WA_STATUS_HOOK``) in the same transaction; the deliverer sends the
due ones in order per message and retries with backoff until ``give_up_at``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.add_column(sa.Column("callback_url", sa.String(length=2000), nullable=True))
    op.create_table(
        "whatsapp_webhook_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("target", sa.String(length=2000), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("give_up_at", sa.DateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_webhook_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_whatsapp_webhook_events_event_id")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_whatsapp_webhook_events_state_next", "whatsapp_webhook_events", ["state", "next_attempt_at"])
    op.create_index("ix_whatsapp_webhook_events_message_state", "whatsapp_webhook_events", ["message_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_whatsapp_webhook_events_message_state", table_name="whatsapp_webhook_events")
    op.drop_index("ix_whatsapp_webhook_events_state_next", table_name="whatsapp_webhook_events")
    op.drop_table("whatsapp_webhook_events")
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.drop_column("callback_url")
