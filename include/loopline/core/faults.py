"""Named fault points for the reliability suite: ``LOOPLINE_FAULT_POINT=<name>`` makes the
process kill itself (SIGKILL, no clean-up, as a crash or an OOM kill would) when it reaches that
point. Unset, a point costs one dictionary lookup. The points sit at every write step of the
data plane and of an alias change, so tests can prove that a crash at any of them loses nothing,
doubles nothing, and leaves no alias disagreeing with the history.
"""

from __future__ import annotations

import os
import signal
import time

POINTS = (
    "validate.shard_written",  # a shard's files are in the lake, not yet published
    "publish.in_transaction",  # the day's publish transaction is open, nothing committed
    "publish.committed",  # committed, superseded files not yet removed
    "score.staged",  # a shard's predictions are COPYed into staging, not yet swapped
    "swap.in_transaction",  # the day's predictions are deleted and re-inserted, not committed
    "drift.in_transaction",  # a day's drift report is deleted, its replacement not yet written
    "alias.pending",  # a model event is written as pending, its alias not yet moved
    "alias.moved",  # the alias is moved, its event not yet marked done
)


def point(name: str) -> None:
    """Kill this process here if ``LOOPLINE_FAULT_POINT`` names this point; sleep here if
    ``LOOPLINE_FAULT_PAUSE`` (or the file ``LOOPLINE_FAULT_PAUSE_FILE`` names, when it exists)
    says ``<point>:<seconds>``: a task held mid-way, for a test to kill the worker running it."""
    if os.environ.get("LOOPLINE_FAULT_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get("LOOPLINE_FAULT_PAUSE", "")
    armed = os.environ.get("LOOPLINE_FAULT_PAUSE_FILE")
    if armed and os.path.exists(armed):
        with open(armed) as file:
            pause = file.read().strip()
    paused, _, seconds = pause.partition(":")
    if paused == name:
        time.sleep(float(seconds or 600))
