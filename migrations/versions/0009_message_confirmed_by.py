"""a message's confirmation by receipt: an ambiguous send resolved by its delivery or read receipt

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

A send interrupted by the host's death was left ``failed`` (``ambiguous_send``) for an operator.
Its WhatsApp message id (or, on neonize, a ``send_secret`` that whatsmeow stores with the id) is now
chosen before the send, so a receipt for it proves that it arrived and resolves it; ``confirmed_by``
records that a receipt, not WhatsApp's acknowledgement, did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.add_column(sa.Column("confirmed_by", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("send_secret", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("whatsapp_messages") as batch:
        batch.drop_column("send_secret")
        batch.drop_column("confirmed_by")
