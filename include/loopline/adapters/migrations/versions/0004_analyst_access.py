"""Analyst access: a daily summary view, and SELECT on the predictions tables and views for the
read-only role ``loopline_analyst`` (created with the other roles by include/sql/roles.sql).

Analysts see predictions and nothing else: not the raw or quarantined input, not the labels,
not the pipeline's bookkeeping. A new analyst-facing view is added to ANALYST_OBJECTS in the
migration that creates it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

S = "warehouse"
ANALYST = "loopline_analyst"
ANALYST_OBJECTS = ("predictions", "predictions_latest", "predictions_daily")


def upgrade() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ANALYST}') THEN
            RAISE EXCEPTION 'role {ANALYST} does not exist on this server: run '
              'include/sql/roles.sql as a superuser before migrating the warehouse';
          END IF;
        END $$
        """
    )
    op.execute(
        f"""
        CREATE VIEW {S}.predictions_daily AS
        SELECT model, partition_date, model_version,
               count(*) AS rows,
               avg(score) AS mean_score,
               avg(predicted_label) AS positive_share,
               min(scored_at) AS first_scored_at,
               max(scored_at) AS last_scored_at
        FROM {S}.predictions
        GROUP BY model, partition_date, model_version
        """
    )
    op.execute(
        f"COMMENT ON VIEW {S}.predictions_daily IS "
        "'Prediction volume per model, day and model version, with the mean score.'"
    )
    op.execute(f"GRANT USAGE ON SCHEMA {S} TO {ANALYST}")
    objects = ", ".join(f"{S}.{name}" for name in ANALYST_OBJECTS)
    op.execute(f"GRANT SELECT ON {objects} TO {ANALYST}")


def downgrade() -> None:
    objects = ", ".join(f"{S}.{name}" for name in ANALYST_OBJECTS)
    op.execute(f"REVOKE SELECT ON {objects} FROM {ANALYST}")
    op.execute(f"REVOKE USAGE ON SCHEMA {S} FROM {ANALYST}")
    op.execute(f"DROP VIEW {S}.predictions_daily")
