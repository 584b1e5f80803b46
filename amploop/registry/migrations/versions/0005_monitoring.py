"""Monitoring: reference profiles, drift reports per window, alerts.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

from amploop.registry.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitor_profiles",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("artifact_key", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_monitor_profiles"),
        sa.UniqueConstraint("model_name", "version", name="uq_monitor_profiles_model_version"),
    )
    op.create_table(
        "drift_reports",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("first_log_id", _BIG_ID, nullable=False),
        sa.Column("last_log_id", _BIG_ID, nullable=False),
        sa.Column("first_at", UTCDateTime(), nullable=False),
        sa.Column("last_at", UTCDateTime(), nullable=False),
        sa.Column("n_rows", sa.Integer(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_reports"),
        sa.UniqueConstraint("model_name", "version", "last_log_id", name="uq_drift_reports_model_version_last_log_id"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", _BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("report_id", _BIG_ID, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("delivery", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_model_name_at", "alerts", ["model_name", "at"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("drift_reports")
    op.drop_table("monitor_profiles")
