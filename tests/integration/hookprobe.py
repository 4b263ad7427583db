"""A hook a test spec names: records what it was given and what the warehouse held when it ran."""

from __future__ import annotations

import json
import os

from loopline import warehouse


def record(model: str, partition_date) -> None:
    row = {
        "model": model,
        "partition_date": partition_date.isoformat(),
        "raw_rows": warehouse.count_rows("raw_rows", model, [partition_date]),
        "clean_rows": warehouse.count_rows("clean_rows", model, [partition_date]),
    }
    with open(os.environ["HOOK_PROBE_LOG"], "a") as log:
        log.write(json.dumps(row) + "\n")
