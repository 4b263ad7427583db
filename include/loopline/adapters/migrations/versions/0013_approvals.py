"""Promotions a person approves (``gate.approval: required``): a candidate that passed the gate
waits as ``awaiting_approval``; the answer (promoted or rejected) names who decided.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

S = "warehouse"
BEFORE = (
    "promoted",
    "rejected",
    "rolled_back",
    "shadowing",
    "kept",
    "challenger_set",
    "retired",
)
EVENTS = (*BEFORE, "awaiting_approval")


def _kinds(events: tuple[str, ...]) -> None:
    op.drop_constraint("event_kind", "model_events", schema=S)
    kinds = ", ".join(f"'{e}'" for e in events)
    op.create_check_constraint("event_kind", "model_events", f"event IN ({kinds})", schema=S)


def upgrade() -> None:
    _kinds(EVENTS)
    op.add_column(
        "model_events",
        sa.Column(
            "decided_by",
            sa.Text,
            comment="the person who approved or rejected the promotion (gate.approval)",
        ),
        schema=S,
    )


def downgrade() -> None:
    op.drop_column("model_events", "decided_by", schema=S)
    op.execute(f"DELETE FROM {S}.model_events WHERE event = 'awaiting_approval'")
    _kinds(BEFORE)
