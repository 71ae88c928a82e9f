"""the billing day's templates: due-day and overdue reminders, isolir and reactivation notices

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Data only: installs the templates of ``INSTALLED_BY_0010`` in ``wa_tasks/core/default_templates.py``
that are missing (by name), as 0002 did for the first five; an existing template of the same name,
edited or not, is never overwritten. The downgrade removes only those still exactly as shipped.
"""

from __future__ import annotations

from alembic import op

from models import shipped_templates
from wa_tasks.core.default_templates import DEFAULTS, INSTALLED_BY_0010

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    shipped_templates.install_missing(op.get_bind(), [DEFAULTS[name] for name in INSTALLED_BY_0010])


def downgrade() -> None:
    shipped_templates.remove_unedited(op.get_bind(), [DEFAULTS[name] for name in INSTALLED_BY_0010])
