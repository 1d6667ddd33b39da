"""long-term memories with full-text search; which memories an answer used

SQLite: an FTS5 external-content table `memories_fts(content)` kept in step by triggers.
PostgreSQL: a generated `tsvector` column (`simple` configuration: memories are German and
English, and no single language's stemmer or stop words suit both) with a GIN index.

Revision ID: 0003_memory
Revises: 0002_plugins
"""

import sqlalchemy as sa
from alembic import op

from jarvis.storage.tables import UTCDateTime

revision = "0003_memory"
down_revision = "0002_plugins"
branch_labels = None
depends_on = None

SQLITE_FTS = [
    """
    CREATE VIRTUAL TABLE memories_fts USING fts5(
        content,
        content='memories',
        content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content);
    END
    """,
    """
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
    END
    """,
    # only when the text changes: counting a use must not rewrite the index
    """
    CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.id, old.content);
        INSERT INTO memories_fts(rowid, content) VALUES (new.id, new.content);
    END
    """,
    # rows that existed before the index (none today; keeps a re-run honest)
    "INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')",
]

POSTGRES_FTS = [
    "ALTER TABLE memories ADD COLUMN content_tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED",
    "CREATE INDEX ix_memories_content_tsv ON memories USING GIN (content_tsv)",
]


def upgrade() -> None:
    op.create_table(
        "memories",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("message_id", sa.String(64)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime),
        sa.Column("use_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pinned", sa.Boolean, nullable=False, server_default=sa.false()),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_memories_kind", "memories", ["kind"])
    op.create_index("ix_memories_created_at", "memories", ["created_at"])
    op.create_index("ix_memories_use_count", "memories", ["use_count"])
    # pinned memories go into every prompt: found without reading the others
    op.create_index(
        "ix_memories_pinned_created_at",
        "memories",
        ["created_at"],
        sqlite_where=sa.text("pinned = 1"),
        postgresql_where=sa.text("pinned"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    elif dialect == "postgresql":
        for statement in POSTGRES_FTS:
            op.execute(statement)
    op.add_column("chat_messages", sa.Column("memory_ids", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("chat_messages") as batch:
        batch.drop_column("memory_ids")
    if op.get_bind().dialect.name == "sqlite":
        for name in ("memories_fts_insert", "memories_fts_delete", "memories_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS memories_fts")
    op.drop_table("memories")  # the PostgreSQL column and index go with it
