"""API keys with a scope: send-only keys for callers that can only put a key in a URL

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

Billing apps' gateway URLs and RouterOS scripts carry their key in the query string, where it lands
in logs and history; a key that can only send limits what a leaked one can do. Stored hashed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_api_keys",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_whatsapp_api_keys_key_hash")),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_api_keys")
