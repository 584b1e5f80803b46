"""Runs know the process that owns them; aliases may be as long as any name (128 characters).

A run records its host, pid and the process's start time, so that a run whose process was
killed (SIGKILL, OOM killer, power loss) can be marked failed instead of staying ``running``.
Alias columns grow from 64 to 128 characters, the limit :func:`amploop.names.check_name` allows.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("process_start", sa.String(128), nullable=True))
    for table in ("aliases", "alias_history"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("alias", existing_type=sa.String(64), type_=sa.String(128), existing_nullable=False)


def downgrade() -> None:
    for table in ("alias_history", "aliases"):
        with op.batch_alter_table(table) as batch:
            batch.alter_column("alias", existing_type=sa.String(128), type_=sa.String(64), existing_nullable=False)
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("process_start")
        batch.drop_column("pid")
        batch.drop_column("host")
