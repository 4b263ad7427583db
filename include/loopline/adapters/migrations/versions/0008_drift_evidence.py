"""Drift evidence: every feature's result says why. The Jensen-Shannon distance of a categorical
feature, the effect size that was compared and its threshold, missing data (the reference's null
share, null counts, the missingness test before and after correction), and the rule that decided
in words; a regression model's label drift on the report.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

S = "warehouse"
COLUMNS = (
    sa.Column("js_distance", sa.Float),
    sa.Column(
        "effect", sa.Text, comment="the effect size compared: wasserstein|psi|js|unseen_share"
    ),
    sa.Column("effect_value", sa.Float),
    sa.Column("threshold", sa.Float, comment="the spec's threshold for that effect size"),
    sa.Column("null_share_ref", sa.Float),
    sa.Column("nulls_ref", sa.BigInteger),
    sa.Column("nulls_cur", sa.BigInteger),
    sa.Column("null_p_value", sa.Float),
    sa.Column("null_p_adjusted", sa.Float),
    sa.Column("rule", sa.Text, comment="which test and threshold decided, in words"),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("drift_features", column.copy(), schema=S)
    op.alter_column("drift_features", "n_ref", type_=sa.BigInteger, schema=S)
    op.alter_column("drift_features", "n_cur", type_=sa.BigInteger, schema=S)
    op.alter_column("drift_reports", "rows", type_=sa.BigInteger, schema=S)
    op.add_column("drift_reports", sa.Column("label_drift", JSONB), schema=S)
    op.execute(
        f"COMMENT ON COLUMN {S}.drift_features.decision IS "
        "'drift | no_drift | insufficient_sample | absent (the feature is not in the data)'"
    )


def downgrade() -> None:
    op.drop_column("drift_reports", "label_drift", schema=S)
    for column in COLUMNS:
        op.drop_column("drift_features", column.name, schema=S)
