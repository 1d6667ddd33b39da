"""download jobs shared by the replicas on one database: who runs each, where it stands, and
a cancel or pause asked for by another replica

Revision ID: 0006_download_jobs
Revises: 0005_replicas
"""

import sqlalchemy as sa
from alembic import op

from jarvis.storage.tables import UTCDateTime

revision = "0006_download_jobs"
down_revision = "0005_replicas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "download_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model_key", sa.String(500), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("quantization", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done_bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total_bytes", sa.BigInteger),
        sa.Column("error", sa.Text),
        sa.Column("error_code", sa.String(64)),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("replica_id", sa.String(64), nullable=False),
        sa.Column("stop", sa.String(16)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_download_jobs_replica_id", "download_jobs", ["replica_id"])
    op.create_index("ix_download_jobs_updated_at", "download_jobs", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_download_jobs_updated_at", "download_jobs")
    op.drop_index("ix_download_jobs_replica_id", "download_jobs")
    op.drop_table("download_jobs")
