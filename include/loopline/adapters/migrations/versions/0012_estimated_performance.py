"""Performance estimated before the labels (CBPE, ``loopline.core.estimate``): per model, day
and served version, the estimated primary metric and accuracy at the decision threshold, each
with a sampling band, and the same estimate on the version's holdout scores (the reference a
drop is judged against).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

S = "warehouse"


def upgrade() -> None:
    op.create_table(
        "estimated_performance",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False, comment="the scored day"),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("value", sa.Float, comment="estimated metric (null: one class expected)"),
        sa.Column("low", sa.Float, comment="2.5% of the metric over labels drawn from scores"),
        sa.Column("high", sa.Float, comment="97.5%"),
        sa.Column("reference", sa.Float, comment="the same estimate on the holdout scores"),
        sa.Column("accuracy", sa.Float, comment="estimated accuracy at the threshold"),
        sa.Column("accuracy_low", sa.Float),
        sa.Column("accuracy_high", sa.Float),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("expected_positive_rate", sa.Float),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date", "model_version"),
        schema=S,
        comment="Performance estimated from calibrated scores before the labels arrive (CBPE).",
    )


def downgrade() -> None:
    op.drop_table("estimated_performance", schema=S)
