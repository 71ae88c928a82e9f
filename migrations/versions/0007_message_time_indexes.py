"""indexes on the message times that lists, charts, figures and retention scan

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

The message list of the pages and the API reads newest first across every status, retention
deletes by ``created_at``, and the daily figures and the dashboard read sends by ``sent_at``:
without these indexes each of them scans the whole table.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_whatsapp_messages_created_at", "whatsapp_messages", ["created_at"])
    op.create_index("ix_whatsapp_messages_sent_at", "whatsapp_messages", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_whatsapp_messages_sent_at", table_name="whatsapp_messages")
    op.drop_index("ix_whatsapp_messages_created_at", table_name="whatsapp_messages")
