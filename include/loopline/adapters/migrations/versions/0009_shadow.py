"""Shadow deployment: the challenger's predictions (kept apart from the analysts' tables and
views), the daily and rolling live comparison of challenger and champion on the same labelled
rows, and the events of a challenger's life in the model history.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

S = "warehouse"
EVENTS = (
    "promoted",  # became champion (offline gate, or live evidence after a shadow period)
    "rejected",  # did not pass the offline gate
    "rolled_back",  # champion set back to an earlier version
    "shadowing",  # passed the offline gate; champion only after its shadow period
    "kept",  # its shadow period ended without live evidence that it is better
    "challenger_set",  # put in shadow by hand
    "retired",  # taken out of shadow (by hand, or replaced)
)


def upgrade() -> None:
    op.execute(f"CREATE TABLE {S}.shadow_predictions (LIKE {S}.predictions INCLUDING ALL)")
    op.execute(
        f"COMMENT ON TABLE {S}.shadow_predictions IS 'Predictions of the challenger, scored in "
        "shadow beside the champion: never served, not in the analysts views.'"
    )
    op.create_table(
        "shadow_comparisons",
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False, comment="the labelled day compared"),
        sa.Column("champion_version", sa.Integer, nullable=False),
        sa.Column("challenger_version", sa.Integer, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False, comment="labelled rows both models scored"),
        sa.Column("champion_value", sa.Float),
        sa.Column("challenger_value", sa.Float),
        sa.Column("difference", sa.Float, comment="challenger's gain, positive = better"),
        sa.Column("low", sa.Float, comment="paired bootstrap interval of the difference"),
        sa.Column("high", sa.Float),
        sa.Column("window_start", sa.Date, nullable=False),
        sa.Column("window_rows", sa.Integer, nullable=False),
        sa.Column("window_difference", sa.Float),
        sa.Column("window_low", sa.Float),
        sa.Column("window_high", sa.Float),
        sa.Column("labelled_days", sa.Integer, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False, comment="waiting | promote | keep"),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model", "partition_date", "challenger_version"),
        schema=S,
        comment="Challenger vs champion on the same labelled rows, per day and over a window.",
    )
    op.drop_constraint("event_kind", "model_events", schema=S)
    kinds = ", ".join(f"'{e}'" for e in EVENTS)
    op.create_check_constraint("event_kind", "model_events", f"event IN ({kinds})", schema=S)


def downgrade() -> None:
    op.drop_constraint("event_kind", "model_events", schema=S)
    op.create_check_constraint(
        "event_kind", "model_events", "event IN ('promoted', 'rejected', 'rolled_back')", schema=S
    )
    op.drop_table("shadow_comparisons", schema=S)
    op.execute(f"DROP TABLE {S}.shadow_predictions")
