"""The lake: clean rows leave PostgreSQL for typed Parquet files; the warehouse keeps the pointer
to each day's published files, a staging table for sharded scoring, and which run published
the day a validation result describes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

S = "warehouse"


def upgrade() -> None:
    op.create_table(
        "lake_partitions",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column(
            "attempt", sa.Text, nullable=False, comment="the run attempt whose files these are"
        ),
        sa.Column("location", sa.Text, nullable=False, comment="the attempt's folder in the lake"),
        sa.Column("files", JSONB, nullable=False, comment="[{path, rows}] of the clean Parquet"),
        sa.Column("rows_clean", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.Text, comment="the Airflow run that published the day"),
        sa.Column("published_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date"),
        schema=S,
        comment="Which clean files of the lake are a model-day: readers read only these.",
    )
    op.execute(
        f"""
        CREATE UNLOGGED TABLE {S}.predictions_staging (
            attempt text NOT NULL,
            shard integer NOT NULL,
            entity_id text NOT NULL,
            score double precision NOT NULL,
            predicted_label integer,
            model text,
            partition_date date,
            staged_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"CREATE INDEX predictions_staging_attempt ON {S}.predictions_staging (attempt, shard)"
    )
    op.execute(
        f"COMMENT ON TABLE {S}.predictions_staging IS 'Scored rows of one scoring attempt, per "
        "shard, until the day is swapped into predictions (unlogged: rebuilt by a re-run).'"
    )
    op.add_column(
        "validation_results",
        sa.Column("published_run_id", sa.Text, comment="the run whose rows the counts describe"),
        schema=S,
    )
    op.execute(f"UPDATE {S}.validation_results SET published_run_id = run_id WHERE success")


def downgrade() -> None:
    op.drop_column("validation_results", "published_run_id", schema=S)
    op.execute(f"DROP TABLE {S}.predictions_staging")
    op.drop_table("lake_partitions", schema=S)
