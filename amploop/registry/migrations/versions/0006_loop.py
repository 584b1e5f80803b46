"""The closed loop: its decisions, and the lease that lets one controller act on a model at a time.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

from amploop.registry.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "loop_decisions",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("challenger_version", sa.Integer(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("numbers", sa.JSON(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_loop_decisions"),
    )
    op.create_index("ix_loop_decisions_model_name_at", "loop_decisions", ["model_name", "at"])
    op.create_table(
        "loop_leases",
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", name="pk_loop_leases"),
    )


def downgrade() -> None:
    op.drop_table("loop_leases")
    op.drop_table("loop_decisions")
