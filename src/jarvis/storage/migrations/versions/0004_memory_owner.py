"""memories belong to a user

Memories stored before this revision belong to "default" (the one user there was).

Revision ID: 0004_memory_owner
Revises: 0003_memory
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004_memory_owner"
down_revision = "0003_memory"
branch_labels = None
depends_on = None


PINNED: dict[str, Any] = {"sqlite_where": sa.text("pinned = 1"), "postgresql_where": sa.text("pinned")}


def upgrade() -> None:
    # add_column, not batch_alter_table: a SQLite table rebuild would drop the FTS triggers
    op.add_column("memories", sa.Column("user_id", sa.String(100), nullable=False, server_default="default"))
    # A user's pinned memories go into each of their prompts: found by this index alone. No
    # general index on user_id: with one user holding most memories, both planners took it
    # for full-text lookups with a LIMIT and read the whole table (bench/memory.py: search
    # p50 7 -> 24 ms on PostgreSQL, recall 3 -> 41 ms on SQLite); the full-text indexes find
    # the few candidates and the owner is checked on those.
    op.drop_index("ix_memories_pinned_created_at", "memories")
    op.create_index("ix_memories_user_pinned_created_at", "memories", ["user_id", "created_at"], **PINNED)


def downgrade() -> None:
    op.drop_index("ix_memories_user_pinned_created_at", "memories")
    op.create_index("ix_memories_pinned_created_at", "memories", ["created_at"], **PINNED)
    with op.batch_alter_table("memories") as batch:
        batch.drop_column("user_id")
