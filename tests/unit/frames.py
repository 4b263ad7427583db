"""Small labelled frames the unit tests share: simulated churn days as the lake holds them
(typed features, the day, the label), in memory."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from loopline.core.columns import LABEL, PARTITION_DATE
from loopline.core.features import typed_frame
from loopline.core.spec import ModelSpec
from loopline.dev.simulate import generate_day

START = dt.date(2026, 1, 1)


def labelled_days(spec: ModelSpec, n: int, rows: int = 300, seed: int = 2) -> pd.DataFrame:
    """``n`` simulated days of ``rows`` rows from 2026-01-01, with their labels."""
    frames = []
    for i in range(n):
        day = START + dt.timedelta(days=i)
        frame, label = generate_day(day, i, rows=rows, seed=seed)
        frames.append(frame.assign(**{PARTITION_DATE: day, LABEL: label.astype(float)}))
    return typed_frame(spec, pd.concat(frames, ignore_index=True))
