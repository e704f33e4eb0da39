"""task: environment_failures, avoid_worker_id/avoid_until, released_token

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

import server.db
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "environment_failures", sa.Integer(), server_default=sa.text("0"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("avoid_worker_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("avoid_until", server.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("released_token", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("released_token")
        batch_op.drop_column("avoid_until")
        batch_op.drop_column("avoid_worker_id")
        batch_op.drop_column("environment_failures")
