"""The simulator: deterministic bytes, realistic shape, and each scenario doing what it says."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loopline.adapters.specs import get_spec
from loopline.adapters.storage import read_frame
from loopline.dev.simulate import CORRUPTIONS, Scenario, generate_day, simulate

START = dt.date(2026, 3, 1)


def run(tmp_path: Path, tag: str, **kwargs) -> list:
    kwargs = {"start": START, "days": 3, "rows_per_day": 400, "seed": 11} | kwargs
    return simulate(
        landing=str(tmp_path / tag / "landing"), labels=str(tmp_path / tag / "labels"), **kwargs
    )


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_same_seed_same_bytes(tmp_path, file_format):
    scenarios = [Scenario("bad_rows", start_day=1, strength=0.05)]
    run(tmp_path, "a", scenarios=scenarios, file_format=file_format)
    run(tmp_path, "b", scenarios=scenarios, file_format=file_format)
    first, second = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert len(first) == 6  # 3 feature files + 3 label files
    assert first == second
    run(tmp_path, "c", seed=12, scenarios=scenarios, file_format=file_format)
    assert digests(tmp_path / "c") != first


def test_a_day_does_not_depend_on_the_range_written(tmp_path):
    run(tmp_path, "long", days=3)
    run(tmp_path, "one", days=1)
    name = "landing/churn/date=2026-03-01/part-000.parquet"
    assert digests(tmp_path / "long")[name] == digests(tmp_path / "one")[name]


def test_shape_matches_the_churn_spec():
    spec = get_spec("churn")
    frame, label = generate_day(START, 0, rows=5000, seed=3)
    assert list(frame.columns[:2]) == ["customer_id", "snapshot_ts"]
    assert set(frame.columns[2:]) == set(spec.feature_names)
    assert frame["customer_id"].is_unique
    assert (frame["snapshot_ts"].dt.date == START).all()
    for feature in spec.features:
        column = frame[feature.name]
        if not feature.nullable:
            assert column.notna().all(), feature.name
        if feature.categories:
            assert set(column.dropna()) <= set(feature.categories), feature.name
        if feature.min is not None:
            assert column.dropna().between(feature.min, feature.max).all(), feature.name
    assert frame[spec.feature_names].isna().any().sum() >= 5  # realistic gaps
    assert 0.01 < label.mean() < 0.08  # a few % positives


def test_labels_arrive_later_in_their_own_place(tmp_path):
    days = run(tmp_path, "x", days=2, label_delay_days=5)
    labels = read_frame(str(tmp_path / "x/labels/churn/date=2026-03-07/labels-2026-03-02.parquet"))
    features = read_frame(days[1].path)
    assert list(labels.columns) == ["customer_id", "partition_date", "churned"]
    assert labels["customer_id"].tolist() == features["customer_id"].tolist()
    assert set(labels["churned"]) <= {0, 1}
    assert "churned" not in features.columns


def test_bad_rows_are_recorded_exactly(tmp_path):
    days = run(tmp_path, "bad", scenarios=[Scenario("bad_rows", start_day=1, strength=0.05)])
    assert days[0].corrupted == {}
    assert len(days[1].corrupted) == 20  # 5% of 400
    frame = read_frame(days[1].path).set_index("customer_id")
    checks = {check for reasons in days[1].corrupted.values() for _, check in reasons}
    assert checks == {"not_null", "in_range", "in_set", "type"}
    for entity, reasons in days[1].corrupted.items():
        for column, _ in reasons:
            bad_value = next(v for c, _, v in CORRUPTIONS if c == column)
            cell = frame.at[entity, column]
            assert pd.isna(cell) if bad_value is None else cell == bad_value, (entity, column)


def test_covariate_shift_moves_only_the_named_features_from_the_start_day():
    shift = [Scenario("covariate_shift", start_day=1, strength=1.0)]
    before, _ = generate_day(START, 0, rows=4000, seed=5, scenarios=shift)
    base, _ = generate_day(START, 1, rows=4000, seed=5)
    after, _ = generate_day(START, 1, rows=4000, seed=5, scenarios=shift)
    assert before["monthly_charges"].mean() == pytest.approx(
        generate_day(START, 0, rows=4000, seed=5)[0]["monthly_charges"].mean()
    )
    for name in ("monthly_charges", "days_since_last_login"):
        assert after[name].mean() - base[name].mean() == pytest.approx(base[name].std(), rel=0.05)
    pd.testing.assert_series_equal(after["tenure_months"], base["tenure_months"])


def test_prior_and_concept_drift_change_labels_not_features():
    base_x, base_y = generate_day(START, 4, rows=20000, seed=9)
    prior_x, prior_y = generate_day(
        START, 4, rows=20000, seed=9, scenarios=[Scenario("prior_shift", strength=1.5)]
    )
    concept_x, concept_y = generate_day(
        START, 4, rows=20000, seed=9, scenarios=[Scenario("concept_drift", strength=1.0)]
    )
    pd.testing.assert_frame_equal(base_x, prior_x)
    pd.testing.assert_frame_equal(base_x, concept_x)
    assert prior_y.mean() > 2 * base_y.mean()
    # Under concept drift heavy data users churn more than before.
    heavy = base_x["data_usage_gb"] > base_x["data_usage_gb"].quantile(0.8)
    assert concept_y[heavy].mean() > 2 * base_y[heavy].mean()


def test_schema_break_renames_a_column_for_its_duration(tmp_path):
    days = run(tmp_path, "s", scenarios=[Scenario("schema_break", start_day=1, duration_days=1)])
    columns = [set(read_frame(d.path).columns) for d in days]
    assert "tenure" in columns[1] and "tenure_months" not in columns[1]
    assert "tenure_months" in columns[0] and "tenure_months" in columns[2]
    assert days[1].renamed == {"tenure_months": "tenure"}


def test_scenario_parse_and_errors():
    parsed = Scenario.parse("covariate_shift:start=20,strength=0.5,days=4,features=age+nps_score")
    assert parsed == Scenario("covariate_shift", 20, 0.5, 4, ("age", "nps_score"))
    assert Scenario.parse("none") == Scenario("none")
    assert (
        parsed.active(20) and parsed.active(23) and not parsed.active(24) and not parsed.active(19)
    )
    with pytest.raises(ValueError, match="unknown scenario 'drift'"):
        Scenario.parse("drift")
    with pytest.raises(ValueError, match="unknown option 'begin'"):
        Scenario.parse("bad_rows:begin=3")
    with pytest.raises(ValueError, match="share of corrupted rows"):
        Scenario("bad_rows", strength=2)


def test_csv_and_parquet_carry_the_same_values(tmp_path):
    parquet = run(tmp_path, "p", days=1)[0]
    csv = run(tmp_path, "c", days=1, file_format="csv")[0]
    a, b = read_frame(parquet.path), read_frame(csv.path)
    assert all(pd.api.types.is_string_dtype(t) for t in b.dtypes)  # CSV cells stay text
    np.testing.assert_allclose(pd.to_numeric(b["monthly_charges"]), a["monthly_charges"])
    assert (pd.to_datetime(b["snapshot_ts"], utc=True) == a["snapshot_ts"]).all()


def test_days_of_any_size_have_unique_ids_and_stay_deterministic(tmp_path):
    """Above 200,000 rows a day is written chunk by chunk (the benchmarks write 10M-row days)."""
    import pyarrow.parquet as pq

    written = run(tmp_path, "big", days=1, rows_per_day=520_000)
    table = pq.read_table(written[0].path, columns=["customer_id"])
    ids = table.column("customer_id").to_pandas()
    assert len(ids) == 520_000 and ids.is_unique
    assert pq.ParquetFile(written[0].path).metadata.num_row_groups == 2  # one per chunk
    again = run(tmp_path, "big2", days=1, rows_per_day=520_000)
    assert digests(tmp_path / "big") == {
        k.replace("big2", "big"): v for k, v in digests(tmp_path / "big2").items()
    }
    labels = read_frame(str(next((tmp_path / "big" / "labels").rglob("*.parquet"))))
    assert len(labels) == 520_000 and labels["customer_id"].is_unique
    assert again[0].positives == written[0].positives > 0
