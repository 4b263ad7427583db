"""A hook a test spec names: records what it was given and what was published when it ran."""

from __future__ import annotations

import json
import os

from loopline.adapters import warehouse


def record(model: str, partition_date) -> None:
    pointer = warehouse.published_partition(model, partition_date)
    row = {
        "model": model,
        "partition_date": partition_date.isoformat(),
        "published_rows": None if pointer is None else int(pointer.rows_clean),
    }
    with open(os.environ["HOOK_PROBE_LOG"], "a") as log:
        log.write(json.dumps(row) + "\n")
