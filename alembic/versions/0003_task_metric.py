"""task_metric: intermediate metrics appended per report, instead of task.intermediate rewritten

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa

import server.db
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_metric",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("created_at", server.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiment.id"]),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_metric_experiment_step", "task_metric", ["experiment_id", "step"])
    op.create_index("ix_task_metric_task_step", "task_metric", ["task_id", "step"])
    _copy_intermediate()
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.drop_column("intermediate")


def _copy_intermediate() -> None:
    """Each stored step of task.intermediate becomes one row (keys were steps as strings)."""
    connection = op.get_bind()
    task = sa.table(
        "task",
        sa.column("id", sa.Integer),
        sa.column("experiment_id", sa.Integer),
        sa.column("intermediate", sa.JSON),
        sa.column("created_at", server.db.UTCDateTime(timezone=True)),
    )
    metric = sa.table(
        "task_metric",
        sa.column("task_id", sa.Integer),
        sa.column("experiment_id", sa.Integer),
        sa.column("step", sa.Integer),
        sa.column("metrics", sa.JSON),
        sa.column("created_at", server.db.UTCDateTime(timezone=True)),
    )
    rows = connection.execute(sa.select(task)).all()
    copied = [
        {
            "task_id": row.id,
            "experiment_id": row.experiment_id,
            "step": int(step),
            "metrics": values,
            "created_at": row.created_at,
        }
        for row in rows
        for step, values in (row.intermediate or {}).items()
        if str(step).lstrip("-").isdigit()
    ]
    if copied:
        connection.execute(sa.insert(metric), copied)


def downgrade() -> None:
    with op.batch_alter_table("task", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("intermediate", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
    op.drop_index("ix_task_metric_task_step", table_name="task_metric")
    op.drop_index("ix_task_metric_experiment_step", table_name="task_metric")
    op.drop_table("task_metric")
