"""`make run` twice: a backfill the first left unfinished does not stop the second."""

from __future__ import annotations

import datetime as dt

from loopline.dev import demo
from loopline.dev.stack import LocalAirflow

from ...conftest import free_port


def test_a_backfill_left_unfinished_is_cancelled_before_the_next(tmp_path, airflow_metadata):
    """Stopped after its summary, before the scheduler marked its last backfill complete, the
    first `make run` left it running, and the second failed at once: `409 There is already a
    running backfill for dag churn_daily`."""
    stack = LocalAirflow(tmp_path / "airflow", airflow_metadata, port=free_port())
    stack.migrate()
    try:
        stack.start()
        stack.wait_healthy()
        stack.wait_dags(["churn_daily"])
        start = dt.date(2026, 1, 1)
        left = demo._backfill(
            stack, "churn_daily", start, start + dt.timedelta(days=4), max_active=1
        )
        stack.api("PUT", f"backfills/{left}/pause")  # as a stopped stack leaves it: unfinished
        assert stack.api("GET", f"backfills/{left}")["completed_at"] is None

        again = demo._backfill(stack, "churn_daily", start, start + dt.timedelta(days=4))

        assert again != left
        assert stack.api("GET", f"backfills/{left}")["completed_at"] is not None
        assert stack.api("GET", f"backfills/{again}")["completed_at"] is None
    finally:
        stack.stop()
