"""How a categorical value is spelled wherever loopline compares categories: in validation
(the spec's allowed set), in the features a model sees, and in the drift counts."""

from __future__ import annotations

import numpy as np
import pandas as pd


def category_text(values: pd.Series) -> pd.Series:
    """Categories as text, one spelling per value whatever the file's type: a number sent for a
    category compares by its text, and a whole float is an integer (2.0 -> '2'), so an
    integer-coded column reads the same with or without nulls."""

    def text(value: object) -> str:
        if isinstance(value, float | np.floating) and float(value).is_integer():
            return str(int(value))
        return str(value)

    if pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return values  # text already: no work
    texts = values.map(text, na_action="ignore").astype(object)
    return texts.where(values.notna(), None)
