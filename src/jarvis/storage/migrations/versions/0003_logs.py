"""captured log records (redacted), with retention by age and count

Revision ID: 0003_logs
Revises: 0002_plugins
"""

import sqlalchemy as sa
from alembic import op

from jarvis.storage.tables import UTCDateTime

revision = "0003_logs"
down_revision = "0002_plugins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_records",
        # BIGSERIAL on PostgreSQL; on SQLite an INTEGER PRIMARY KEY AUTOINCREMENT (ids never reused)
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("levelno", sa.Integer, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(128)),
        sa.Column("status", sa.Integer),
        sa.Column("extra", sa.Text),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_log_records_created_at", "log_records", ["created_at"])
    op.create_index("ix_log_records_request_id", "log_records", ["request_id"])


def downgrade() -> None:
    op.drop_table("log_records")
