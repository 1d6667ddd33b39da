"""memories belong to a user

Memories stored before this revision belong to "default" (the one user there was).

Revision ID: 0004_memory_owner
Revises: 0003_memory
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_memory_owner"
down_revision = "0003_memory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_column, not batch_alter_table: a SQLite table rebuild would drop the FTS triggers
    op.add_column("memories", sa.Column("user_id", sa.String(100), nullable=False, server_default="default"))
    op.create_index("ix_memories_user_id_created_at", "memories", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_memories_user_id_created_at", "memories")
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("user_id")
