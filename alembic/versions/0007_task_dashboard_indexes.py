"""task: indexes for the dashboard's task table sorted by value or by finishing time

An experiment's page sorts its tasks by the objective (`score`) or by when they finished, a page
at a time; without these a 100,000-task experiment sorts every row for each page (bench/README.md,
"Dashboard").

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_task_experiment_score", "task", ["experiment_id", "score"])
    op.create_index("ix_task_experiment_finished", "task", ["experiment_id", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_task_experiment_finished", table_name="task")
    op.drop_index("ix_task_experiment_score", table_name="task")
