"""The upgrade path: a warehouse of the JSONB era (revision 0005, input rows in raw_rows and
clean_rows) upgrades with the usual migration command; clean rows move to the lake as typed,
published Parquet, raw rows are archived to the lake, nothing is lost, the JSONB tables go."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from loopline.adapters import warehouse
from loopline.adapters.specs import get_spec

DAY = dt.date(2026, 2, 1)


def alembic_upgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(warehouse.MIGRATIONS))
    with warehouse.engine(url).begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


@pytest.fixture
def old_warehouse(pg_server, tmp_path, monkeypatch):
    """A warehouse database at revision 0005 with one day of JSONB rows."""
    monkeypatch.setenv("LOOPLINE_LAKE", str(tmp_path / "lake"))
    pg_server.psql("postgres", "DROP DATABASE IF EXISTS upgrade_test")
    pg_server.psql("postgres", "CREATE DATABASE upgrade_test OWNER loopline_writer")
    url = pg_server.url("warehouse").rsplit("/", 1)[0] + "/upgrade_test"
    alembic_upgrade(url, "0005")
    spec = get_spec("churn")
    records = []
    for i in range(3):
        features = {
            f.name: (f"{f.categories[0]}" if f.categories else float(i + 1)) for f in spec.features
        }
        records.append((f"C{i}", features))
    with warehouse.engine(url).begin() as conn:
        for i, (entity, features) in enumerate(records):
            params = {
                "e": entity,
                "f": json.dumps(features),
                "r": json.dumps({"customer_id": entity, **features}),
                "i": i,
                "d": DAY,
            }
            conn.exec_driver_sql(
                "INSERT INTO warehouse.clean_rows (model, partition_date, entity_id, event_ts, "
                "features, source_file, row_number, run_id) VALUES ('churn', %(d)s, %(e)s, "
                "'2026-02-01T10:00:00Z', CAST(%(f)s AS jsonb), 'landing.parquet', %(i)s, 'old')",
                params,
            )
            conn.exec_driver_sql(
                "INSERT INTO warehouse.raw_rows (model, partition_date, source_file, row_number, "
                "record, run_id) VALUES ('churn', %(d)s, 'landing.parquet', %(i)s, "
                "CAST(%(r)s AS jsonb), 'old')",
                params,
            )
        conn.exec_driver_sql(
            "INSERT INTO warehouse.raw_rows (model, partition_date, source_file, row_number, "
            "record, run_id) VALUES ('churn', %(d)s, 'landing.parquet', 3, "
            """'{"customer_id": "C3", "plan": "gold"}', 'old')""",
            {"d": DAY},
        )
    yield url, records, tmp_path / "lake"
    warehouse.engine(url).dispose()
    pg_server.psql("postgres", "DROP DATABASE upgrade_test")


def test_an_old_warehouse_upgrades_and_its_rows_move_to_the_lake(old_warehouse):
    url, records, lake = old_warehouse
    assert (
        warehouse.upgrade(url)
        == sorted(p.name[:4] for p in (warehouse.MIGRATIONS / "versions").glob("0*.py"))[-1]
    )
    tables = set(
        warehouse.query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'warehouse'", url=url
        ).tablename
    )
    assert not {"raw_rows", "clean_rows"} & tables
    pointer = warehouse.published_partition("churn", DAY, url=url)
    assert pointer.rows_clean == 3 and pointer.run_id == "migration-0007"
    [file] = pointer.files
    frame = pq.read_table(file.path).to_pandas()
    spec = get_spec("churn")
    assert frame.entity_id.tolist() == [r[0] for r in records]
    for (_, features), row in zip(records, frame.to_dict("records"), strict=True):
        assert {k: row[k] for k in spec.feature_names} == features
    assert str(frame.tenure_months.dtype) == "float64" and frame.plan.dtype != float
    # A file of the first layout (plain own names) reads with today's names.
    from loopline.adapters import lake as the_lake
    from loopline.core.columns import ENTITY_ID, RUN_ID

    [current] = list(the_lake.read_batches(file.path, [ENTITY_ID, RUN_ID, "plan"]))
    assert list(current.columns) == [ENTITY_ID, RUN_ID, "plan"]
    assert current[ENTITY_ID].tolist() == [r[0] for r in records]
    assert set(the_lake.clean_columns(file.path)) >= {ENTITY_ID, RUN_ID, *spec.feature_names}
    archived = pq.read_table(
        lake / "archive" / "raw_rows" / "churn" / f"date={DAY}" / "raw_rows.parquet"
    ).to_pandas()
    assert len(archived) == 4 and json.loads(archived.record[3]) == {
        "customer_id": "C3",
        "plan": "gold",
    }
    assert pd.api.types.is_integer_dtype(archived.row_number)
    assert file.path.startswith(str(lake))
