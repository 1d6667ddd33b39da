"""replicas on one database: who is running, which replica writes each answer, and event
payloads too large for a NOTIFY

Revision ID: 0005_replicas
Revises: 0001_chat
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from jarvis.storage.tables import UTCDateTime

revision = "0005_replicas"
down_revision = "0001_chat"
branch_labels = None
depends_on = None

STREAMING: dict[str, Any] = {
    "sqlite_where": sa.text("status = 'streaming'"),
    "postgresql_where": sa.text("status = 'streaming'"),
}


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
    )
    # add_column, not batch_alter_table: a SQLite table rebuild is not needed for a nullable column
    op.add_column("chat_messages", sa.Column("replica_id", sa.String(64)))
    # the answers a dead replica left unfinished, found without reading the whole table
    op.create_index("ix_chat_messages_streaming_replica", "chat_messages", ["replica_id"], **STREAMING)
    op.create_table(
        "event_payloads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("body", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_payloads")
    op.drop_index("ix_chat_messages_streaming_replica", "chat_messages")
    op.drop_column("chat_messages", "replica_id")
    op.drop_table("replicas")
