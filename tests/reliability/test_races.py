"""Races, forced deterministically (hooks at the steps, never sleeps): a stale scoring run, a
file that grows while it is read, two runs of one day scoring at once, alias changes that crash
half way or meet each other, and the day lock shown to matter by removing it."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from loopline.adapters import model_store, warehouse
from loopline.adapters.specs import get_spec
from loopline.core.errors import FileChangedError, PermanentError
from loopline.core.records import RetrainDecisionRecord
from loopline.steps import score as scoring
from loopline.steps.validate import validate_day

from .suite import DAY, account, case, scored_world_of


@pytest.fixture(scope="module")
def world(warehouse_url, airflow_db, tmp_path_factory):
    """A champion (v2 of two versions) and a published, scored day: the ground the races run on."""
    yield from scored_world_of(warehouse_url, tmp_path_factory, rows=400, seed=4, versions=2)


def landing_file() -> Path:
    return next(Path(os.environ["LOOPLINE_LANDING"]).glob(f"churn/date={DAY}/*.parquet"))


def test_a_stale_scoring_run_never_replaces_the_days_predictions(world):
    """Run A plans and stages, run B re-publishes the corrected day and swaps, A swaps last:
    A is refused, and the predictions are B's, exactly the ids now published."""
    case("stale-scoring-swap")
    spec = get_spec("churn")
    shards = scoring.plan_scoring(spec, DAY)  # run A, against the day as it is
    for shard in shards:
        scoring.score_shard(spec, shard)
    path, original = landing_file(), pd.read_parquet(landing_file())
    try:
        original.iloc[:150].to_parquet(path, index=False)  # upstream corrects the file
        validate_day(spec, DAY, run_id="run-b")
        scoring.score_day(spec, DAY, dag_run_id="run-b")
        with pytest.raises(PermanentError, match="the day now points at attempt") as info:
            scoring.swap_day(spec, shards, dag_run_id="run-a", scored_at=pd.Timestamp.now("UTC"))
        assert "the run that published the day scores it" in str(info.value)
        after = warehouse.predictions("churn", DAY)
        assert set(after.dag_run_id) == {"run-b"} and len(after) == 150
        account("churn", DAY, predicted=True)
    finally:
        original.to_parquet(path, index=False)
        validate_day(spec, DAY, run_id="restore")
        scoring.score_day(spec, DAY, dag_run_id="restore")


def test_a_file_that_grows_while_it_is_read_is_never_published_short(world, monkeypatch):
    """40 rows appended to the day's file while its shard reads the first batch: the shard
    fails naming the file and what to do; the published day and its files record stay."""
    case("file-grows-while-read")
    from loopline.adapters import landing

    spec = get_spec("churn").model_copy()
    spec = spec.model_copy(
        update={"processing": spec.processing.model_copy(update={"batch_rows": 1000})}
    )
    path = landing_file()
    original = pd.read_parquet(path)
    before = warehouse.published_partition("churn", DAY)
    files_before = warehouse.query(
        "SELECT sha256, size_bytes, rows FROM warehouse.ingested_files WHERE model = 'churn' "
        "AND partition_date = %(d)s",
        {"d": DAY},
    )
    real = landing.iter_batches

    def growing(file, batch_rows, where, row_groups=None):
        for i, item in enumerate(real(file, batch_rows, where, row_groups)):
            yield item
            if i == 0:  # upstream appends while the shard is between batches
                extra = original.head(40).assign(customer_id=lambda f: f.customer_id + "x")
                pd.concat([original, extra]).to_parquet(path, index=False)

    monkeypatch.setattr(landing, "iter_batches", growing)
    try:
        with pytest.raises(FileChangedError) as info:
            validate_day(spec, DAY, run_id="grows")
        assert not info.value.retryable
        assert str(info.value).startswith(f"model 'churn', date {DAY}, file {path}: the file")
        assert "re-run the whole day" in str(info.value)
        assert warehouse.published_partition("churn", DAY) == before
        pd.testing.assert_frame_equal(
            warehouse.query(
                "SELECT sha256, size_bytes, rows FROM warehouse.ingested_files WHERE "
                "model = 'churn' AND partition_date = %(d)s",
                {"d": DAY},
            ),
            files_before,
        )
        account("churn", DAY, predicted=True)
    finally:
        monkeypatch.undo()
        original.to_parquet(path, index=False)


def test_a_file_replaced_between_plan_and_shard_says_to_rerun_the_day(world):
    case("file-replaced-after-plan")
    from loopline.steps.ingest import plan_day
    from loopline.steps.validate import validate_shard

    spec = get_spec("churn")
    plan = plan_day(spec, DAY, run_id="replaced")
    path, original = landing_file(), pd.read_parquet(landing_file())
    try:
        pd.concat([original, original.head(3).assign(customer_id="Z")]).to_parquet(path)
        with pytest.raises(FileChangedError, match="planned at .* bytes, now") as info:
            validate_shard(spec, plan.shards[0], run_id="replaced")
        assert "What to do: write landing files whole" in str(info.value)
        assert "retry plans the day" not in str(info.value)  # what it said: not so
    finally:
        original.to_parquet(path, index=False)
    account("churn", DAY, predicted=True)


def test_two_runs_of_a_day_validating_and_scoring_at_once_leave_one_whole_day(world):
    """Both runs publish and score; forced: A publishes and plans its scoring, B publishes, A
    scores (the attempt B replaced is retired, not gone: A reads it whole), B scores, A swaps,
    B swaps. A's swap is refused (its attempt is no longer the day's), B's predictions are the
    published ids."""
    case("same-day-at-once")
    spec = get_spec("churn")
    results = {}
    for run in ("twin-a", "twin-b"):
        results[run] = validate_day(spec, DAY, run_id=run)
        results[f"{run}-shards"] = scoring.plan_scoring(spec, DAY)
    for run in ("twin-a", "twin-b"):
        for shard in results[f"{run}-shards"]:
            scoring.score_shard(spec, shard)
    now = pd.Timestamp.now("UTC")
    with pytest.raises(PermanentError, match="the day now points at"):
        scoring.swap_day(spec, results["twin-a-shards"], dag_run_id="twin-a", scored_at=now)
    swapped = scoring.swap_day(spec, results["twin-b-shards"], dag_run_id="twin-b", scored_at=now)
    assert swapped.rows > 0
    assert set(warehouse.predictions("churn", DAY).dag_run_id) == {"twin-b"}
    account("churn", DAY, predicted=True)
    # and truly at once: two threads, each a whole run; whichever published last is the day
    errors = []

    def whole_run(name: str) -> None:
        try:
            validate_day(spec, DAY, run_id=name)
            scoring.score_day(spec, DAY, dag_run_id=name)
        except Exception as exc:  # only a stale swap may fail: the other run's day stands
            errors.append(exc)

    threads = [threading.Thread(target=whole_run, args=(f"at-once-{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(e, PermanentError) for e in errors), errors
    assert all("the day now points at" in str(e) for e in errors)
    pointer = warehouse.published_partition("churn", DAY)
    scored = warehouse.predictions("churn", DAY)
    if not errors or set(scored.dag_run_id) != {pointer.run_id}:
        scoring.score_day(spec, DAY, dag_run_id=pointer.run_id)  # the publisher scores it
    assert set(warehouse.predictions("churn", DAY).dag_run_id) == {pointer.run_id}
    account("churn", DAY, predicted=True)


# --- alias changes: write-ahead, one at a time -------------------------------------------------


ALIAS_SCRIPT = """
import sys
from loopline.steps.rollback import rollback
rollback("churn", int(sys.argv[1]), reason="crash test")
"""


def champion() -> int:
    return int(model_store.store().champion("churn").version)


def agree() -> None:
    """The alias and the history agree: the last settled champion event names the champion."""
    from loopline.steps import aliases

    aliases.reconcile("churn")
    events = warehouse.model_events("churn")
    assert not (events.state == "pending").any()
    moves = events[(events.state == "done") & events.event.isin(["promoted", "rolled_back"])]
    assert int(moves.version.iloc[-1]) == champion(), moves[["event", "version", "state"]]


@pytest.mark.parametrize("point", ["alias.pending", "alias.moved"])
def test_a_crash_in_an_alias_change_leaves_alias_and_history_agreeing(world, point):
    case(f"crash-{point}")
    before = champion()
    target = 1 if before == 2 else 2
    done = subprocess.run(
        [sys.executable, "-c", ALIAS_SCRIPT, str(target)],
        env={**os.environ, "LOOPLINE_FAULT_POINT": point},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    pending = warehouse.model_events("churn")
    assert pending.state.iloc[-1] == "pending"  # written ahead, the crash left it so
    assert champion() == (before if point == "alias.pending" else target)
    agree()  # settled: abandoned (alias never moved) or done (it did)
    settled = warehouse.model_events("churn").state.iloc[-1]
    assert settled == ("abandoned" if point == "alias.pending" else "done")
    # and a plain rollback now goes back to the champion the current one really replaced
    from loopline.steps.rollback import rollback

    current = champion()
    result = rollback("churn", reason="after the crash")
    assert result.previous_champion == current and result.champion != current
    agree()
    rollback("churn", 2, reason="back to v2 for the next case")


def test_a_rollback_while_the_gate_judges_is_not_undone(world, monkeypatch):
    """The gate scores v3 against v2; meanwhile an operator rolls back to v1 (v2 was bad). The
    gate must not then promote v3 'over v2', and a later plain rollback must not restore v2."""
    case("rollback-while-gate-judges")
    from loopline.core import gate
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.promote import run_gate
    from loopline.steps.rollback import rollback
    from loopline.steps.train import run_training

    spec = get_spec("churn")
    assert champion() == 2
    version = run_evaluation(
        spec, run_training(spec, DAY, dag_run_id="v3", seed=7).mlflow_run_id
    ).version
    real = gate.decide

    def judged_while_rolled_back(*args, **kwargs):
        decision = real(*args, **kwargs)
        rollback("churn", 1, reason="v2 misbehaves")  # the operator, during judging
        return gate.Decision(True, [*decision.reasons, "(forced pass for the race)"])

    monkeypatch.setattr(gate, "decide", judged_while_rolled_back)
    result = run_gate(spec, version)
    assert not result.promoted and champion() == 1
    assert "the champion changed from v2 to v1 while the gate judged" in result.reasons[-1]
    agree()
    monkeypatch.undo()
    # v3 never was champion: a plain rollback undoes the operator's (operations.md, section 5)
    undone = rollback("churn", reason="plain")
    assert (undone.champion, undone.previous_champion) == (2, 1) and champion() == 2
    agree()


# --- the day lock matters -------------------------------------------------------------------


def test_without_the_day_lock_overlapping_drift_checks_fail(world, monkeypatch):
    """Mutation check: with the day's advisory lock taken out of partition_transaction, two drift
    checks of a day forced to overlap (B commits while A's transaction is open) do not both
    succeed: A's insert meets B's report (the day's unique key) and that task fails. With the
    lock, B waits for A and replaces its report: both succeed, one report."""
    case("day-lock-matters")
    from contextlib import contextmanager

    import psycopg2.errors
    from loopline.core import faults
    from loopline.steps.check_drift import run_drift_check

    spec = get_spec("churn")
    real_point, real_transaction = faults.point, warehouse.partition_transaction

    @contextmanager
    def no_lock(model, day, url=None):
        with warehouse._transaction(url) as cursor:
            yield cursor

    def overlap(unlocked: bool) -> tuple[int, dict[str, BaseException]]:
        """(the day's reports, each failed check's error) after A and B overlapped."""
        inside, go_on = threading.Event(), threading.Event()
        errors: dict[str, BaseException] = {}

        def pausing(name: str) -> None:
            if name == "drift.in_transaction" and threading.current_thread().name == "A":
                inside.set()
                assert go_on.wait(60)
            real_point(name)

        def check() -> None:
            try:
                run_drift_check(spec, DAY)
            except BaseException as error:  # noqa: BLE001 - the thread's outcome, for the test
                errors[threading.current_thread().name] = error

        monkeypatch.setattr(faults, "point", pausing)
        monkeypatch.setattr(
            warehouse, "partition_transaction", no_lock if unlocked else real_transaction
        )
        a = threading.Thread(target=check, name="A")
        b = threading.Thread(target=check, name="B")
        a.start()
        assert inside.wait(120)
        b.start()
        b.join(5)
        assert b.is_alive() != unlocked  # the lock makes B wait; without it B is done
        go_on.set()
        a.join(120)
        b.join(120)
        reports = warehouse.query(
            "SELECT id FROM warehouse.drift_reports WHERE model = 'churn' "
            "AND partition_date = %(d)s",
            {"d": DAY},
        )
        return len(reports), errors

    try:
        reports, errors = overlap(unlocked=True)  # the mutation is caught
        assert reports == 1 and list(errors) == ["A"], errors
        cause = errors["A"]
        while cause is not None and not isinstance(cause, psycopg2.errors.UniqueViolation):
            cause = cause.__cause__ or cause.__context__
        assert cause is not None, errors["A"]
        assert overlap(unlocked=False) == (1, {})  # with the lock: both succeed, one report
    finally:
        monkeypatch.setattr(faults, "point", real_point)
        monkeypatch.setattr(warehouse, "partition_transaction", real_transaction)
    account("churn", DAY, predicted=True)


def test_a_promotion_during_scoring_cannot_mix_versions(world):
    case("promotion-during-scoring")
    from loopline.steps.rollback import rollback

    spec = get_spec("churn")
    before = champion()
    shards = scoring.plan_scoring(spec, DAY)  # the version is fixed here, once
    rollback("churn", 1 if before == 2 else 2, reason="a promotion while the day scores")
    for shard in shards:
        scoring.score_shard(spec, shard)
    scoring.swap_day(spec, shards, dag_run_id="mid-promotion", scored_at=pd.Timestamp.now("UTC"))
    assert set(warehouse.predictions("churn", DAY).model_version) == {before}
    account("churn", DAY, predicted=True)
    rollback("churn", before, reason="restore")


def test_a_crash_while_a_challenger_is_promoted_settles_both_aliases(world):
    case("crash-shadow-promote")
    from loopline.steps import shadow

    shadow.set_challenger("churn", 1 if champion() == 2 else 2, reason="for the crash")
    target = int(model_store.store().challenger("churn").version)
    script = "from loopline.steps import shadow; shadow.promote('churn', reason='crash')"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "LOOPLINE_FAULT_POINT": "alias.moved"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    assert champion() == target  # moved, the challenger alias gone with it, event pending
    agree()
    assert warehouse.model_events("churn").state.iloc[-1] == "done"
    from loopline.steps.rollback import rollback

    rollback("churn", 2, reason="restore")
    agree()


def test_a_rollback_to_a_version_that_does_not_exist_changes_nothing(world):
    case("rollback-missing-version")
    from loopline.core.errors import RollbackError
    from loopline.steps.rollback import rollback

    before, events = champion(), len(warehouse.model_events("churn"))
    with pytest.raises(RollbackError, match="no version 99"):
        rollback("churn", 99, reason="typo")
    assert champion() == before and len(warehouse.model_events("churn")) == events
    agree()


def test_a_days_drift_check_and_its_trigger_rerun_replace_never_add(world):
    """A re-run of the day's drift check replaces its report; a re-run of the trigger for the
    day upserts its decision (one per model, day and source)."""
    case("monitoring-reruns-replace")
    from loopline.core.retraining import Signal, TrainingRuns
    from loopline.steps.check_drift import run_drift_check
    from loopline.steps.decide_retraining import decide_and_record

    spec = get_spec("churn")
    for _ in range(2):
        report = run_drift_check(spec, DAY)
        decide_and_record(
            spec,
            DAY,
            Signal.from_result("drift", report.as_dict()),
            training_runs=TrainingRuns(),
            dag_run_id="rerun",
        )
    count = warehouse.query(
        "SELECT (SELECT count(*) FROM warehouse.drift_reports WHERE model = 'churn' AND "
        "partition_date = %(d)s) AS reports, (SELECT count(*) FROM warehouse.retrain_decisions "
        "WHERE model = 'churn' AND partition_date = %(d)s AND source = 'drift') AS decisions",
        {"d": DAY},
    ).iloc[0]
    assert (count.reports, count.decisions) == (1, 1)


def test_retraining_for_one_change_is_bounded_however_long_it_hurts(world):
    """Follow-ups skip the cool-down, so they must be bounded: after 1 + max_follow_ups
    retrainings for a change, no day of degraded performance triggers another."""
    case("follow-ups-bounded")
    from loopline.core.retraining import Signal, TrainingRuns
    from loopline.steps.decide_retraining import decide_and_record

    spec = get_spec("churn")
    change = DAY - dt.timedelta(days=6)
    for i in range(1 + spec.retraining.max_follow_ups):
        warehouse.record_retrain_decision(
            RetrainDecisionRecord(
                model="churn",
                partition_date=change + dt.timedelta(days=i + 1),
                source="performance",
                triggered=True,
                reason="test: a retraining for the change",
                dag_run_id="bounded",
                change_date=change,
                follow_up=i > 0,
            )
        )
    decision = decide_and_record(
        spec,
        DAY,
        Signal("performance", True, "still degraded", None, change, True, "x"),
        training_runs=TrainingRuns(),
        dag_run_id="bounded",
    )
    assert not decision.triggered
    assert f"at most {spec.retraining.max_follow_ups} per change" in decision.reason
    warehouse.query(
        "DELETE FROM warehouse.retrain_decisions WHERE dag_run_id = 'bounded' RETURNING 1"
    )
