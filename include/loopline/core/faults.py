"""Named fault points for the reliability suite: ``LOOPLINE_FAULT_POINT=<name>`` makes the
process kill itself (SIGKILL, no clean-up, as a crash or an OOM kill would) when it reaches that
point. Unset, a point costs one dictionary lookup. The points sit at every write step of the
data plane, so tests can prove that a crash at any of them loses nothing and doubles nothing.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "validate.shard_written",  # a shard's files are in the lake, not yet published
    "publish.in_transaction",  # the day's publish transaction is open, nothing committed
    "publish.committed",  # committed, superseded files not yet removed
    "score.staged",  # a shard's predictions are COPYed into staging, not yet swapped
    "swap.in_transaction",  # the day's predictions are deleted and re-inserted, not committed
)


def point(name: str) -> None:
    if os.environ.get("LOOPLINE_FAULT_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
