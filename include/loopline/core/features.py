"""Features: one code path for training and prediction.

The preprocessing is a scikit-learn ``ColumnTransformer`` that becomes the first step of the
model pipeline, fit on the training split only and saved inside the model artifact, so
prediction runs exactly the transformation training ran. Columns the spec marks
``available_at_prediction: false`` are never model inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OrdinalEncoder

from loopline.core.categories import category_text
from loopline.core.spec import ModelSpec


def input_columns(spec: ModelSpec) -> list[str]:
    """The model's input columns, in a fixed order."""
    return [f.name for f in spec.features if f.available_at_prediction]


def preprocessor(spec: ModelSpec) -> ColumnTransformer:
    """Numbers pass through (XGBoost handles missing values itself); categories become ordinal
    codes, with missing and never-seen categories encoded as missing rather than failing."""
    numeric = [f.name for f in spec.features if f.available_at_prediction and f.type == "numeric"]
    categorical = [
        f for f in spec.features if f.available_at_prediction and f.type == "categorical"
    ]
    encoder = OrdinalEncoder(
        categories=[f.categories if f.categories else "auto" for f in categorical]
        if all(f.categories for f in categorical)
        else "auto",
        handle_unknown="use_encoded_value",
        unknown_value=np.nan,
        encoded_missing_value=np.nan,
        dtype=np.float64,
    )
    # A plain array, not a frame: XGBoost then names its inputs f0, f1, ... itself, so a
    # feature may be called anything ('<', '[' and ']' are refused in XGBoost's own names);
    # get_feature_names_out() maps the positions back to the spec's names.
    return ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            ("categorical", encoder, [f.name for f in categorical]),
        ],
        verbose_feature_names_out=False,
    )


def typed_frame(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Give every feature column the spec's dtype (float64 or object text)."""
    out = frame.copy()
    for f in spec.features:
        if f.name not in out.columns:
            continue
        if f.type == "numeric":
            out[f.name] = pd.to_numeric(out[f.name], errors="coerce").astype("float64")
        else:
            out[f.name] = category_text(out[f.name]).where(out[f.name].notna(), np.nan)
    return out
