"""Models: labels, predictions (+ the analysts' latest-score view), model events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

S = "warehouse"


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column(
            "partition_date", sa.Date, nullable=False, comment="the day the features describe"
        ),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("label", sa.Float, nullable=False),
        sa.Column("arrival_date", sa.Date, nullable=False),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date", "entity_id"),
        schema=S,
        comment="Late-arriving ground truth, keyed like the rows it labels.",
    )
    op.create_index("labels_arrival", "labels", ["model", "arrival_date"], schema=S)
    op.create_table(
        "predictions",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("mlflow_run_id", sa.Text, nullable=False),
        sa.Column(
            "score",
            sa.Float,
            nullable=False,
            comment="probability of the positive class, or the predicted value",
        ),
        sa.Column("predicted_label", sa.Integer, comment="classification only: score >= threshold"),
        sa.Column("dag_run_id", sa.Text, nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "partition_date", "entity_id"),
        schema=S,
        comment="Batch predictions: one row per model, day and entity, "
        "traceable to its model version and run.",
    )
    op.create_index("predictions_entity", "predictions", ["model", "entity_id"], schema=S)
    op.execute(
        f"""
        CREATE VIEW {S}.predictions_latest AS
        SELECT DISTINCT ON (model, entity_id) *
        FROM {S}.predictions
        ORDER BY model, entity_id, partition_date DESC, scored_at DESC
        """
    )
    op.execute(
        f"COMMENT ON VIEW {S}.predictions_latest IS 'The latest score of each entity, per model.'"
    )
    op.create_table(
        "model_events",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False, comment="promoted | rejected | rolled_back"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous_champion", sa.Integer),
        sa.Column("reasons", JSONB, nullable=False),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("mlflow_run_id", sa.Text),
        sa.Column("dag_run_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.CheckConstraint("event IN ('promoted', 'rejected', 'rolled_back')", name="event_kind"),
        schema=S,
        comment="Append-only history of gate decisions, promotions and rollbacks.",
    )
    op.create_index("model_events_model", "model_events", ["model", "id"], schema=S)


def downgrade() -> None:
    op.drop_table("model_events", schema=S)
    op.execute(f"DROP VIEW {S}.predictions_latest")
    op.drop_table("predictions", schema=S)
    op.drop_table("labels", schema=S)
