"""sessions belong to a user

Revision ID: 0003_session_owner
Revises: 0002_plugins
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_session_owner"
down_revision = "0002_plugins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_sessions") as batch:
        batch.add_column(sa.Column("user_id", sa.String(100), nullable=False, server_default="default"))
        batch.create_index("ix_chat_sessions_user_id", ["user_id"])


def downgrade() -> None:
    with op.batch_alter_table("chat_sessions") as batch:
        batch.drop_index("ix_chat_sessions_user_id")
        batch.drop_column("user_id")
