"""plugin enable/disable state

Revision ID: 0002_plugins
Revises: 0001_chat
"""

import sqlalchemy as sa
from alembic import op

from jarvis.storage.tables import UTCDateTime

revision = "0002_plugins"
down_revision = "0001_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plugin_state",
        sa.Column("plugin_id", sa.String(100), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plugin_state")
