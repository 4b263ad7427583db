"""Monitoring: drift reports and their features, retrain decisions, realized performance.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

S = "warehouse"


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False, comment="last day of the window"),
        sa.Column("window_start", sa.Date, nullable=False),
        sa.Column(
            "model_version",
            sa.Integer,
            nullable=False,
            comment="champion whose profile is the reference",
        ),
        sa.Column("reference_run_id", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("drifted_share", sa.Float, nullable=False, comment="importance-weighted"),
        sa.Column("dataset_drift", sa.Boolean, nullable=False),
        sa.Column("drifted_features", JSONB, nullable=False),
        sa.Column("prediction_drift", JSONB),
        sa.Column("label_rate", JSONB),
        sa.Column("report_uri", sa.Text),
        sa.Column("dag_run_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.UniqueConstraint("model", "partition_date"),
        schema=S,
        comment="One drift check per model and day, written before anything acts on it.",
    )
    op.create_table(
        "drift_features",
        sa.Column(
            "report_id",
            sa.BigInteger,
            sa.ForeignKey(f"{S}.drift_reports.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("test", sa.Text, nullable=False),
        sa.Column("statistic", sa.Float, nullable=False),
        sa.Column("p_value", sa.Float, nullable=False),
        sa.Column("p_adjusted", sa.Float, nullable=False),
        sa.Column("psi", sa.Float, nullable=False),
        sa.Column("wasserstein", sa.Float),
        sa.Column("unseen_share", sa.Float),
        sa.Column("n_ref", sa.Integer, nullable=False),
        sa.Column("n_cur", sa.Integer, nullable=False),
        sa.Column("null_share", sa.Float, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("report_id", "feature"),
        schema=S,
    )
    op.create_table(
        "retrain_decisions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("source", sa.Text, nullable=False, comment="drift | performance"),
        sa.Column("triggered", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("report_id", sa.BigInteger),
        sa.Column("train_run_id", sa.Text),
        sa.Column("dag_run_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.UniqueConstraint("model", "partition_date", "source"),
        schema=S,
        comment="Every retraining decision, triggered or suppressed, with its reason.",
    )
    op.create_table(
        "model_performance",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False, comment="the day that was scored"),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("primary_metric", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("reference", sa.Float, comment="the version's holdout value"),
        sa.Column("degraded", sa.Boolean, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date", "model_version"),
        schema=S,
        comment="Realized metrics of predictions once their labels have arrived.",
    )


def downgrade() -> None:
    for table in ("model_performance", "retrain_decisions", "drift_features", "drift_reports"):
        op.drop_table(table, schema=S)
