"""Shadow deployment end to end (real PostgreSQL, MLflow, dag.test): a candidate that passes the
offline gate is scored in shadow beside the champion, compared on the same labelled rows,
promoted only after its shadow period when it is really better on live data (and kept when it
is not), and never seen by analysts."""

from __future__ import annotations

import datetime as dt
import os

import psycopg2
import pytest
from loopline.adapters import model_store, warehouse
from loopline.adapters.specs import get_spec
from loopline.dev.simulate import Scenario, simulate
from loopline.steps import shadow
from loopline.steps.validate import validate_day

from ...conftest import SESSION_DIR, dag, forget_models, run_day, task_states, write_spec

START = dt.date(2026, 6, 1)


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


@pytest.fixture(scope="module")
def world(warehouse_url, airflow_db, tmp_path_factory):
    """Churn whose concept changes from day 8: v1 learned the old world, v2 the new one."""
    from ...conftest import empty_tables

    root = tmp_path_factory.mktemp("shadow")
    specs = root / "specs"
    write_spec(
        specs,
        training={"window_days": 10, "min_days": 6, "validation_days": 2, "holdout_days": 3},
        labels={"delay_days": 0, "performance_tolerance": 0.5},
        drift={"window_days": 1, "min_rows": 300},
        shadow={"required_days": 2, "margin": 0.0, "window_days": 3},
    )
    env = {
        "LOOPLINE_SPECS_DIR": str(specs),
        "LOOPLINE_LANDING": str(root / "landing"),
        "LOOPLINE_LABELS": str(root / "labels"),
        "LOOPLINE_LAKE": str(root / "lake"),
        "LOOPLINE_REPORTS": str(root / "reports"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    empty_tables(warehouse_url)
    forget_models("churn")
    simulate(
        landing=env["LOOPLINE_LANDING"],
        labels=env["LOOPLINE_LABELS"],
        start=START,
        days=24,
        rows_per_day=1500,
        seed=13,
        label_delay_days=0,
        scenarios=[Scenario("concept_drift", start_day=8, strength=2.0)],
    )
    spec = get_spec("churn")
    for i in range(17):
        validate_day(spec, day(i), run_id="seed")
    for end, reason in ((day(8), "before the change"), (day(17), "after the change")):
        run = dag("churn_train").test(run_conf={"end_date": end.isoformat(), "reason": reason})
        assert run.state == "success", task_states(run)
    yield root
    forget_models("churn")
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def events() -> list[tuple]:
    frame = warehouse.model_events("churn")
    return list(zip(frame.event, frame.version, strict=True))


def test_a_candidate_that_passes_the_gate_is_scored_in_shadow_then_promoted_on_live_evidence(
    world,
):
    assert events() == [("promoted", 1), ("shadowing", 2)]
    note = warehouse.model_events("churn").reasons.iloc[-1][-1]
    assert "champion only after 2 labelled day(s) beating v1 on live data" in note
    assert int(model_store.store().champion("churn").version) == 1

    for i in (17, 18):
        assert run_day("churn_daily", day(i)).state == "success"
        labels = run_day("churn_labels", day(i))
        assert labels.state == "success", task_states(labels)
        served = warehouse.predictions("churn", day(i))
        shadowed = warehouse.predictions("churn", day(i), table="shadow_predictions")
        assert set(served.model_version) == {1} and set(shadowed.model_version) == {2}
        assert sorted(served.entity_id) == sorted(shadowed.entity_id)  # the same rows
        assert set(shadowed.dag_run_id) == set(served.dag_run_id)  # the same lineage
    compared = warehouse.shadow_comparisons("churn", 2)
    assert compared.verdict.tolist() == ["waiting", "promote"]
    assert (compared.rows == 1500).all() and (compared.window_rows == [1500, 3000]).all()
    first = compared.iloc[0]
    assert first.challenger_value > first.champion_value and first.difference > 0
    assert compared.iloc[1].window_low > 0  # better beyond the noise
    assert events()[-1] == ("promoted", 2)
    promoted = warehouse.model_events("churn").iloc[-1]
    assert (
        promoted.previous_champion == 1 and "beats the champion on live data" in promoted.reasons[0]
    )
    assert promoted.metrics["live"]["labelled_days"] == 2
    assert model_store.store().challenger("churn") is None

    assert run_day("churn_daily", day(19)).state == "success"
    assert set(warehouse.predictions("churn", day(19)).model_version) == {2}
    assert warehouse.predictions("churn", day(19), table="shadow_predictions").empty


def test_a_challenger_that_is_not_better_live_is_kept_once_and_never_promoted(world):
    shadow.set_challenger("churn", 1, reason="test: the old model in shadow")
    for i in (20, 21, 22):
        assert run_day("churn_daily", day(i)).state == "success"
        assert run_day("churn_labels", day(i)).state == "success"
    compared = warehouse.shadow_comparisons("churn", 1)
    assert compared.verdict.tolist() == ["waiting", "keep", "decided"]
    assert [e for e in events() if e[1] == 1][-2:] == [("challenger_set", 1), ("kept", 1)]
    assert int(model_store.store().champion("churn").version) == 2
    kept = warehouse.model_events("churn").iloc[-1]
    assert "not better than the champion beyond the noise" in kept.reasons[0]
    assert shadow.retire("churn", reason="test: done") == 1
    assert events()[-1] == ("retired", 1)
    assert model_store.store().challenger("churn") is None


def test_analysts_do_not_see_shadow_predictions(world):
    from loopline.dev.pgserver import LocalPostgres
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["WAREHOUSE_URL"])
    password = LocalPostgres(SESSION_DIR / "postgres").passwords()["loopline_analyst"]
    connection = psycopg2.connect(
        host=url.host, port=url.port, user="loopline_analyst", password=password, dbname="warehouse"
    )
    cursor = connection.cursor()
    for table in ("shadow_predictions", "shadow_comparisons"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute(f"SELECT 1 FROM warehouse.{table}")
        connection.rollback()
    cursor.execute("SELECT count(*) FROM warehouse.predictions")
    served = warehouse.count_rows("predictions", "churn")
    shadowed = warehouse.count_rows("shadow_predictions", "churn")
    assert cursor.fetchone() == (served,) and shadowed > 0  # the served rows, none of the shadow
    connection.close()
