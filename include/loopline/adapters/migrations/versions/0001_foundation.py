"""Foundation: raw and clean input rows, ingested files, quarantine, validation results.

Input tables are shared by all models and keyed by (model, partition_date), so that adding a
model is adding a spec file, with no DDL: feature values travel as JSONB, typed by the spec.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "warehouse"


def _partition_columns() -> list[sa.Column]:
    return [
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "ingested_files",
        *_partition_columns(),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("columns", JSONB, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date", "source_file"),
        schema=S,
        comment="One row per landing file read by ingest (replaced when the day is re-ingested).",
    )
    op.create_table(
        "raw_rows",
        *_partition_columns(),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("row_number", sa.Integer, nullable=False),
        sa.Column("record", JSONB, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date", "source_file", "row_number"),
        schema=S,
        comment="Every landed row exactly as upstream sent it.",
    )
    op.create_table(
        "clean_rows",
        *_partition_columns(),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("event_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", JSONB, nullable=False),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("row_number", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date", "entity_id"),
        schema=S,
        comment="Rows that passed validation, typed per the model spec.",
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        *_partition_columns(),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("row_number", sa.Integer, nullable=False),
        sa.Column("entity_id", sa.Text),
        sa.Column("record", JSONB, nullable=False),
        sa.Column("reasons", JSONB, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.UniqueConstraint("model", "partition_date", "source_file", "row_number"),
        schema=S,
        comment="Rows that failed validation: the original record and every reason.",
    )
    op.create_table(
        "validation_results",
        *_partition_columns(),
        sa.Column("run_id", sa.Text),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("rows_clean", sa.Integer, nullable=False),
        sa.Column("rows_quarantined", sa.Integer, nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("failed_expectations", JSONB, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("validated_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date"),
        schema=S,
        comment="The latest validation of each model and day, passed or failed.",
    )


def downgrade() -> None:
    for table in ("validation_results", "quarantine", "clean_rows", "raw_rows", "ingested_files"):
        op.drop_table(table, schema=S)
