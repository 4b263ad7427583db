"""Features: one code path for training and prediction.

The preprocessing is a scikit-learn ``ColumnTransformer`` that becomes the first step of the
model pipeline, fit on the training split only and saved inside the model artifact, so
prediction runs exactly the transformation training ran. Columns the spec marks
``available_at_prediction: false`` are never model inputs.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OrdinalEncoder

from loopline import warehouse
from loopline.spec import ModelSpec

SQL_TYPES = {"numeric": "float8", "categorical": "text"}


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
    return ColumnTransformer(
        [
            ("numeric", "passthrough", numeric),
            ("categorical", encoder, [f.name for f in categorical]),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def typed_frame(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Give every feature column the spec's dtype (float64 or object text)."""
    out = frame.copy()
    for f in spec.features:
        if f.name not in out.columns:
            continue
        if f.type == "numeric":
            out[f.name] = pd.to_numeric(out[f.name], errors="coerce").astype("float64")
        else:
            out[f.name] = out[f.name].astype(object).where(out[f.name].notna(), np.nan)
    return out


def _feature_projection(spec: ModelSpec) -> str:
    return ", ".join(f'"{f.name}" {SQL_TYPES[f.type]}' for f in spec.features)


def clean_rows_sql(spec: ModelSpec, *, with_labels: bool = False) -> str:
    """Clean rows of days ``%(start)s``..``%(end)s`` with features projected to typed columns
    server-side (``jsonb_to_record``); optionally inner-joined to their labels."""
    label_join = (
        "JOIN warehouse.labels l ON l.model = c.model AND l.partition_date = c.partition_date "
        "AND l.entity_id = c.entity_id"
        if with_labels
        else ""
    )
    label_column = ", l.label" if with_labels else ""
    return (
        f"SELECT c.partition_date, c.entity_id, c.event_ts, r.*{label_column} "
        f"FROM warehouse.clean_rows c CROSS JOIN LATERAL jsonb_to_record(c.features) "
        f"AS r({_feature_projection(spec)}) {label_join} "
        f"WHERE c.model = %(model)s AND c.partition_date BETWEEN %(start)s AND %(end)s "
        "ORDER BY c.partition_date, c.entity_id"
    )


def read_clean(
    spec: ModelSpec, start: dt.date, end: dt.date, *, with_labels: bool = False, url=None
) -> pd.DataFrame:
    """Clean rows of days ``start``..``end`` (inclusive), typed by the spec, read with COPY."""
    text = {f.name: str for f in spec.features if f.type == "categorical"}
    params = {"model": spec.name, "start": start, "end": end}
    frame = warehouse.copy_out(clean_rows_sql(spec, with_labels=with_labels), params, url, text)
    frame["partition_date"] = pd.to_datetime(frame["partition_date"]).dt.date
    frame["entity_id"] = frame["entity_id"].astype(str)
    return typed_frame(spec, frame)
