"""Why a prediction is what it is (opt-in per spec, ``explain.reasons``): each prediction's top
features by |contribution| (XGBoost's TreeSHAP, the booster's margin units), staged with the
scored rows and swapped with the day's predictions in the same transaction, in a table the
analysts may read.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

S = "warehouse"
ANALYST = "loopline_analyst"
TOP = 3


def _reason_columns() -> list[sa.Column]:
    columns = []
    for i in range(1, TOP + 1):
        columns += [
            sa.Column(
                f"feature_{i}", sa.Text, comment=f"the feature of rank {i} by |contribution|"
            ),
            sa.Column(f"contribution_{i}", sa.Float, comment="its contribution (margin units)"),
        ]
    return columns


def upgrade() -> None:
    for column in _reason_columns():
        op.add_column("predictions_staging", column, schema=S)
    op.create_table(
        "prediction_reasons",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("entity_id", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        *_reason_columns(),
        sa.PrimaryKeyConstraint("model", "partition_date", "entity_id"),
        schema=S,
        comment="The top features of each prediction by |contribution| (TreeSHAP, log-odds for "
        "a classifier, target units for a regression), for models whose spec asks "
        "(explain.reasons); join to predictions on (model, partition_date, entity_id).",
    )
    op.execute(f"GRANT SELECT ON {S}.prediction_reasons TO {ANALYST}")


def downgrade() -> None:
    op.drop_table("prediction_reasons", schema=S)
    for i in range(1, TOP + 1):
        op.drop_column("predictions_staging", f"feature_{i}", schema=S)
        op.drop_column("predictions_staging", f"contribution_{i}", schema=S)
