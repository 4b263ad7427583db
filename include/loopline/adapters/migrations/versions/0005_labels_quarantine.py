"""Label rows that fail their checks get a table of their own.

They used to share ``quarantine`` with input rows, keyed by their arrival day, so re-validating
that day's input deleted them. ``quarantine`` now holds input rows only (clean + quarantined =
read, per day); existing label rows move across.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

S = "warehouse"
COLUMNS = "model, partition_date, source_file, row_number, entity_id, record, reasons, run_id"
LABEL_ROWS = """reasons @> '[{"check": "label"}]'"""


def upgrade() -> None:
    op.execute(f"CREATE TABLE {S}.labels_quarantine (LIKE {S}.quarantine INCLUDING ALL)")
    op.execute(
        f"COMMENT ON TABLE {S}.labels_quarantine IS 'Label rows that failed their checks, keyed "
        "by arrival day: the original record and every reason.'"
    )
    op.execute(
        f"INSERT INTO {S}.labels_quarantine ({COLUMNS}, quarantined_at) "
        f"SELECT {COLUMNS}, quarantined_at FROM {S}.quarantine WHERE {LABEL_ROWS}"
    )
    op.execute(f"DELETE FROM {S}.quarantine WHERE {LABEL_ROWS}")


def downgrade() -> None:
    op.execute(
        f"INSERT INTO {S}.quarantine ({COLUMNS}, quarantined_at) "
        f"SELECT {COLUMNS}, quarantined_at FROM {S}.labels_quarantine"
    )
    op.execute(f"DROP TABLE {S}.labels_quarantine")
