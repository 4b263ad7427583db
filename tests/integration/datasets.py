"""Two models unlike churn, for the tests that walk the README's "Adding a model" path: a
regression with an abrupt covariate shift ("prices"), and a small binary panel of about 100
rows a day with integer ids and no categorical feature ("panel"). Each writes its spec, its
daily landing files and its late labels (arrival-day folders), seeded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PRICES_SPEC = {
    "name": "prices",
    "description": "Sale price of a listing (a regression).",
    "owner": "pricing",
    "entity_id": {"column": "listing_id", "dtype": "string"},
    "event_timestamp": "listed_at",
    "target": {"column": "price", "task": "regression"},
    "schedule": {"cron": "0 4 * * *", "start_date": "2026-01-01"},
    "features": [
        {"name": "sqft", "type": "numeric", "nullable": False, "min": 100, "max": 20000},
        {"name": "rooms", "type": "numeric", "nullable": False, "min": 1, "max": 20},
        {"name": "age_years", "type": "numeric", "min": 0, "max": 200},
        {
            "name": "district",
            "type": "categorical",
            "nullable": False,
            "categories": ["north", "south", "east", "west", "centre"],
        },
    ],
    "training": {"window_days": 10, "min_days": 6, "validation_days": 2, "holdout_days": 2},
    "gate": {"min_lift_over_baseline": 10000, "champion_margin": 1000, "slice_tolerance": 50000},
    "drift": {
        "window_days": 2,
        "min_rows": 200,
        "cooldown_days": 3,
        "persistence_k": 2,
        "persistence_m": 3,
        "min_new_labels": 200,
        "dataset_threshold": 0.2,
    },
    "labels": {"delay_days": 1, "performance_tolerance": 20000},
}
PANEL_SPEC = {
    "name": "panel",
    "description": "Will a panel member answer next week's survey (small binary panel).",
    "owner": "research",
    "entity_id": {"column": "member", "dtype": "integer"},
    "event_timestamp": "observed_at",
    "target": {"column": "answers", "task": "binary_classification"},
    "schedule": {"cron": "0 5 * * *", "start_date": "2026-01-01"},
    "features": [
        {"name": "answered_last_4", "type": "numeric", "nullable": False, "min": 0, "max": 4},
        {"name": "days_since_answer", "type": "numeric", "min": 0, "max": 1000},
        {"name": "income_k", "type": "numeric", "min": 0, "max": 1000},
    ],
    "training": {"window_days": 14, "min_days": 8, "validation_days": 2, "holdout_days": 3},
    "metric": {"decision_threshold": 0.5},
    "gate": {"min_lift_over_baseline": 0.05, "champion_margin": 0.01, "slice_tolerance": 0.1},
    "drift": {"window_days": 3, "min_rows": 150, "cooldown_days": 3, "min_new_labels": 100},
    "labels": {"delay_days": 1, "performance_tolerance": 0.1},
}


def write_spec(folder: Path, spec: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def _labels(root: Path, model: str, day: dt.date, delay: int, ids, values, id_col, target):
    arrival = day + dt.timedelta(days=delay)
    frame = pd.DataFrame({id_col: ids, "partition_date": day.isoformat(), target: values})
    _write(frame, root / model / f"date={arrival}" / f"labels-{day}.parquet")


def write_prices(
    landing: Path, labels: Path, start: dt.date, days: int, rows: int = 300, shift_day: int = 99
) -> None:
    """Listings whose size jumps by 60% from ``shift_day`` (prices follow the same formula)."""
    for i in range(days):
        day = start + dt.timedelta(days=i)
        rng = np.random.default_rng([11, i])
        sqft = rng.lognormal(7.0, 0.35, rows) * (1.6 if i >= shift_day else 1.0)
        rooms = np.clip(np.round(sqft / 400 + rng.normal(0, 0.7, rows)), 1, 20)
        age = np.where(rng.uniform(size=rows) < 0.05, np.nan, rng.uniform(0, 80, rows).round())
        district = rng.choice(["north", "south", "east", "west", "centre"], rows)
        premium = pd.Series(district).map({"centre": 80_000, "north": 20_000}).fillna(0)
        price = 150 * sqft + 9_000 * rooms - 600 * np.nan_to_num(age, nan=40) + premium
        price = price + rng.normal(0, 15_000, rows)
        ids = [f"L{i:03d}-{k:05d}" for k in range(rows)]
        stamp = pd.Timestamp(day, tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400, rows), "s")
        frame = pd.DataFrame(
            {
                "listing_id": ids,
                "listed_at": stamp,
                "sqft": sqft.round(),
                "rooms": rooms,
                "age_years": age,
                "district": district,
            }
        )
        _write(frame, landing / "prices" / f"date={day}" / "part-000.parquet")
        _labels(labels, "prices", day, 1, ids, price.round(), "listing_id", "price")


def write_panel(
    landing: Path,
    labels: Path,
    start: dt.date,
    days: int,
    members: int = 110,
    model: str = "panel",
    names: dict[str, str] | None = None,
) -> None:
    """The same ~110 members every day (integer ids); the target sent as yes/no text. ``model``
    and ``names`` write the same data for another model whose columns are called otherwise."""
    names = names or {}
    for i in range(days):
        day = start + dt.timedelta(days=i)
        rng = np.random.default_rng([12, i])
        answered = rng.integers(0, 5, members).astype(float)
        since = rng.exponential(20, members).round()
        income = rng.gamma(4, 12, members).round(1)
        logit = -1.8 + 0.9 * answered - 0.03 * since + 0.005 * income
        answers = rng.uniform(size=members) < 1 / (1 + np.exp(-logit))
        ids = np.arange(1000, 1000 + members)
        stamp = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=9)
        frame = pd.DataFrame(
            {
                "member": ids,
                "observed_at": stamp,
                "answered_last_4": answered,
                "days_since_answer": since,
                "income_k": income,
            }
        ).rename(columns=names)
        _write(frame, landing / model / f"date={day}" / "part-000.parquet")
        target = names.get("answers", "answers")
        spelled = np.where(answers, "yes", "no")
        _labels(labels, model, day, 1, ids, spelled, names.get("member", "member"), target)
