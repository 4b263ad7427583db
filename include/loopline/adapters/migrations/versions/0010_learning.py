"""Learning after a change: every retraining decision keeps the day the world changed by its
evidence and whether it was a follow-up of an earlier retraining for that change; each day's
realized performance keeps the live level it was compared with (the served models' level before
the change or before the monitored window). Model events are written ahead of the alias they
move: ``state`` (pending, done, abandoned) and the ``alias`` they move (loopline.steps.aliases).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

S = "warehouse"


def upgrade() -> None:
    op.add_column(
        "retrain_decisions",
        sa.Column(
            "change_date",
            sa.Date,
            comment="first day the world looked changed (drift run start, first degraded day)",
        ),
        schema=S,
    )
    op.add_column(
        "retrain_decisions",
        sa.Column(
            "follow_up",
            sa.Boolean,
            nullable=False,
            server_default=sa.false(),
            comment="a later retraining for a change already retrained for",
        ),
        schema=S,
    )
    op.add_column(
        "model_events",
        sa.Column(
            "state",
            sa.Text,
            nullable=False,
            server_default="done",
            comment="pending (written before its alias moved) | done | abandoned (never moved)",
        ),
        schema=S,
    )
    op.create_check_constraint(
        "event_state", "model_events", "state IN ('pending', 'done', 'abandoned')", schema=S
    )
    op.add_column(
        "model_events",
        sa.Column("alias", sa.Text, comment="the alias the event moves (champion, challenger)"),
        schema=S,
    )
    op.add_column(
        "model_events",
        sa.Column(
            "removes_alias",
            sa.Boolean,
            nullable=False,
            server_default=sa.false(),
            comment="the event deletes its alias instead of pointing it at the version",
        ),
        schema=S,
    )
    op.add_column(
        "model_performance",
        sa.Column(
            "live_reference",
            sa.Float,
            comment="the served models' realized level before the change or the window",
        ),
        schema=S,
    )


def downgrade() -> None:
    op.drop_column("model_performance", "live_reference", schema=S)
    op.drop_column("model_events", "removes_alias", schema=S)
    op.drop_column("model_events", "alias", schema=S)
    op.drop_constraint("event_state", "model_events", schema=S)
    op.drop_column("model_events", "state", schema=S)
    op.drop_column("retrain_decisions", "follow_up", schema=S)
    op.drop_column("retrain_decisions", "change_date", schema=S)
