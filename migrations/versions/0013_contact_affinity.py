"""routing affinity: the latest send to a recipient, by index

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

Routing prefers the session that last sent to or heard from a recipient
(``wa_tasks/pipeline/affinity.py``); it reads the latest send per recipient through
``(to_number, sent_at)``. Incoming messages already have an index on ``sender``.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_whatsapp_messages_to_number_sent_at", "whatsapp_messages", ["to_number", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_whatsapp_messages_to_number_sent_at", table_name="whatsapp_messages")
