"""Daily-path benchmark (run by hand, not in CI): one simulated day of N churn rows through every
stage, each stage as the tasks run it, next to the floor of the same work measured in the same
run, with the peak memory of each stage in a fresh process.

    .venv/bin/python benchmarks/daily_path.py --rows 1000000
    .venv/bin/python benchmarks/daily_path.py --rows 10000000 --train-window-rows 10000000

Stages (library calls, as the tasks make them), each against its floor:
- ingest: list, inspect and checksum the landing file (``plan_day``); floor: read its bytes;
- validate: every shard through the GX suite into the lake, then publish (``validate_shard`` +
  ``publish_day``); floor: read the Parquet with pyarrow, vectorised null/range/category checks,
  write Parquet;
- predict: score the published file, COPY into staging, swap the day (``plan_scoring`` +
  ``score_shard`` + ``swap_day``); floor: read the columns, ``Booster.inplace_predict``, bare COPY;
- drift: stream a one-day window into the champion's sketches and compare (``run_drift_check``);
  floor: read the window's columns and compare in memory;
- reasons, reasons_approx: the predict stage again with each prediction's top three reasons
  (``explain.reasons``, TreeSHAP and then Saabas's approximation; the extra time is their cost);
- shadow: the predict stage again with a challenger in shadow (its extra time is the cost of
  shadow deployment);
- scale-out: the day's 2 shards scored by 2 processes at once vs both by 1 process;
- PostgreSQL bytes added per million input rows (predictions, quarantine, bookkeeping);
- optionally, the peak memory of a training over a window of ``--train-window-rows`` rows.

Everything runs on a throwaway, durable PostgreSQL server, lake, landing zone and MLflow store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 3, 1)
TRAIN_DAYS, TRAIN_ROWS = 20, 20_000
SPEC_CHANGES = {
    "training": {"window_days": 20, "min_days": 10, "validation_days": 3, "holdout_days": 4},
    "labels": {"delay_days": 0, "performance_tolerance": 0.05},
    "drift": {"window_days": 1, "alpha": 0.01, "min_rows": 500, "dataset_threshold": 0.1},
    "validation": {"max_bad_row_share": 0.05},
}


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across the
    fork and exec that started the process)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value


# --- set-up -----------------------------------------------------------------------------------


def environment(tmp: Path) -> dict[str, str]:
    from loopline.adapters.settings import airflow_environment

    return {
        "LOOPLINE_HOME": str(tmp / "home"),
        "LOOPLINE_SPECS_DIR": str(tmp / "specs"),
        "LOOPLINE_LANDING": str(tmp / "landing"),
        "LOOPLINE_LABELS": str(tmp / "labels"),
        "LOOPLINE_LAKE": str(tmp / "lake"),
        "LOOPLINE_REPORTS": str(tmp / "reports"),
        **airflow_environment(tmp / "airflow"),
    }


def write_spec(tmp: Path, shard_rows: int) -> None:
    import yaml

    spec = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    for section, values in SPEC_CHANGES.items():
        spec[section] = {**spec.get(section, {}), **values}
    spec["processing"] = {"shard_rows": shard_rows, "batch_rows": 250_000}
    (tmp / "specs").mkdir(exist_ok=True)
    (tmp / "specs" / "churn.yaml").write_text(yaml.safe_dump(spec))


def train_champion() -> None:
    """A champion of 300 trees from 20 small days (the benchmark measures the big day)."""
    from loopline.adapters.specs import get_spec
    from loopline.dev.simulate import simulate
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.labels import sync_labels
    from loopline.steps.promote import run_gate
    from loopline.steps.train import run_training
    from loopline.steps.validate import validate_day

    start = DAY - dt.timedelta(days=TRAIN_DAYS)
    simulate(
        landing=os.environ["LOOPLINE_LANDING"],
        labels=os.environ["LOOPLINE_LABELS"],
        start=start,
        days=TRAIN_DAYS,
        rows_per_day=TRAIN_ROWS,
        seed=1,
        label_delay_days=0,
    )
    spec = get_spec("churn")
    for i in range(TRAIN_DAYS):
        validate_day(spec, start + dt.timedelta(days=i), run_id="bench-train")
    sync_labels(spec, DAY, run_id="bench")
    trained = run_training(spec, DAY - dt.timedelta(days=1), dag_run_id="bench")
    version = run_evaluation(spec, trained.mlflow_run_id).version
    run_gate(spec, version, dag_run_id="bench")
    # A second version, registered but not promoted: the challenger of the shadow stage.
    trained = run_training(spec, DAY - dt.timedelta(days=2), dag_run_id="bench-challenger")
    run_evaluation(spec, trained.mlflow_run_id)


def simulate_day(rows: int, day: dt.date = DAY, seed: int = 7) -> str:
    from loopline.dev.simulate import simulate

    [written] = simulate(
        landing=os.environ["LOOPLINE_LANDING"],
        labels=os.environ["LOOPLINE_LABELS"],
        start=day,
        days=1,
        rows_per_day=rows,
        seed=seed,
        label_delay_days=0,
    )
    return written.path


# --- stages, each in a fresh process ----------------------------------------------------------


def stage_ingest(path: str) -> dict:
    from loopline.adapters.specs import get_spec
    from loopline.steps.ingest import plan_day

    spec = get_spec("churn")
    seconds, plan = timed(plan_day, spec, DAY, run_id="bench")
    peak = peak_mib()
    floor, _ = timed(lambda: Path(path).read_bytes())
    return {"seconds": seconds, "floor": floor, "rows": plan.rows, "peak_mib": peak}


def validate_floor(path: str, spec) -> float:
    """Read the landing Parquet with pyarrow, run the spec's rules vectorised, write Parquet."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        writer = None
        for batch in pq.ParquetFile(path).iter_batches(batch_size=250_000):
            frame = batch.to_pandas()
            bad = np.zeros(len(frame), dtype=bool)
            for f in spec.features:
                values = frame[f.name]
                if not f.nullable:
                    bad |= values.isna().to_numpy()
                if f.min is not None:
                    bad |= (values.notna() & ~values.between(f.min, f.max)).to_numpy()
                if f.categories:
                    bad |= (values.notna() & ~values.isin(f.categories)).to_numpy()
            table = pa.Table.from_pandas(frame[~bad], preserve_index=False)
            writer = writer or pq.ParquetWriter(Path(tmp) / "floor.parquet", table.schema)
            writer.write_table(table)
        writer.close()
    return time.perf_counter() - started


def stage_validate(path: str) -> dict:
    from loopline.adapters.specs import get_spec
    from loopline.steps.validate import validate_day

    spec = get_spec("churn")
    seconds, result = timed(validate_day, spec, DAY, run_id="bench")
    peak = peak_mib()
    floor = validate_floor(path, spec)
    return {"seconds": seconds, "floor": floor, "rows": result.rows_read, "peak_mib": peak}


def predict_floor(spec) -> tuple[float, float]:
    """Read the published file's model columns, encode, ``Booster.inplace_predict``, then a bare
    COPY of (entity_id, score) into a temporary unindexed table (the floor of the work), and,
    timed apart, a COPY of the full prediction rows into a new durable table with the
    predictions table's two indexes (the floor of landing them where analysts read them)."""
    import io

    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from loopline.adapters import model_store, warehouse
    from loopline.core.columns import ENTITY_ID
    from loopline.core.features import input_columns

    champion = model_store.store().champion("churn")
    model = model_store.store().load_version("churn", champion.version)
    pipeline = model.estimator if hasattr(model, "estimator") else model
    pipeline = getattr(pipeline, "estimator", pipeline)
    booster = pipeline.named_steps["model"].get_booster()
    prep = pipeline.named_steps["features"]
    files = warehouse.published_partition("churn", DAY).files
    raw = warehouse.engine().raw_connection()
    cursor = raw.cursor()
    cursor.execute("CREATE TEMP TABLE floor_out (entity_id text, score float8)")
    started = time.perf_counter()
    columns = [ENTITY_ID, *input_columns(spec)]  # the lake's own id column (marked)
    frame = pd.concat([pq.read_table(f.path, columns=columns).to_pandas() for f in files])
    frame = frame.rename(columns={ENTITY_ID: "entity_id"})
    score = booster.inplace_predict(np.asarray(prep.transform(frame[input_columns(spec)])))
    buffer = io.StringIO()
    pd.DataFrame({"entity_id": frame["entity_id"], "score": score}).to_csv(
        buffer, index=False, header=False
    )
    buffer.seek(0)
    cursor.copy_expert("COPY floor_out FROM STDIN WITH (FORMAT csv)", buffer)
    raw.commit()
    elapsed = time.perf_counter() - started

    rows = pd.DataFrame(
        {
            "model": "churn",
            "partition_date": DAY,
            "entity_id": frame["entity_id"].to_numpy(),
            "score": score,
            "predicted_label": (score >= 0.5).astype(int),
            "model_version": champion.version,
            "mlflow_run_id": champion.run_id,
            "dag_run_id": "scheduled__2026-03-01T00:00:00+00:00",
            "scored_at": pd.Timestamp.now(tz="UTC"),
        }
    )
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False, header=False)
    buffer.seek(0)
    cursor.execute(
        "CREATE TABLE warehouse.floor_landing (LIKE warehouse.predictions INCLUDING ALL)"
    )
    raw.commit()
    started = time.perf_counter()
    cursor.copy_expert(
        f"COPY warehouse.floor_landing ({', '.join(rows.columns)}) FROM STDIN WITH (FORMAT csv)",
        buffer,
    )
    raw.commit()
    landing = time.perf_counter() - started
    cursor.execute("DROP TABLE warehouse.floor_landing")
    raw.commit()
    raw.close()
    return elapsed, landing


def stage_predict(path: str) -> dict:
    import pandas as pd
    from loopline.adapters.specs import get_spec
    from loopline.steps.score import score_day

    spec = get_spec("churn")
    now = pd.Timestamp.now(tz="UTC")
    seconds, result = timed(score_day, spec, DAY, dag_run_id="bench", scored_at=now)
    peak = peak_mib()
    floor, landing = predict_floor(spec)
    return {
        "seconds": seconds,
        "floor": floor,
        "landing_floor": landing,
        "rows": result.rows,
        "peak_mib": peak,
    }


def stage_reasons(path: str) -> dict:
    """The predict stage again with each prediction's top three reasons (``explain.reasons``:
    TreeSHAP contributions per row, staged and swapped with the predictions into
    ``prediction_reasons``): its extra time is their cost. The day is emptied first, as for
    the shadow stage."""
    import pandas as pd
    from loopline.adapters.specs import get_spec
    from loopline.core.spec import Explain
    from loopline.steps.score import score_day

    spec = get_spec("churn")
    method = os.environ.get("BENCH_REASONS", "exact")
    spec = spec.model_copy(update={"explain": Explain(reasons=True, top=3, method=method)})
    empty_the_day()
    now = pd.Timestamp.now(tz="UTC")
    seconds, result = timed(score_day, spec, DAY, dag_run_id="bench-reasons", scored_at=now)
    return {"seconds": seconds, "floor": None, "rows": result.rows, "peak_mib": peak_mib()}


def stage_shadow(path: str) -> dict:
    """The predict stage again with a challenger in shadow: champion and challenger each score
    the day and swap it (the challenger into ``shadow_predictions``). The predict stage's rows
    are deleted (and vacuumed) first, so that both stages swap into an empty day and the
    difference is the challenger's cost alone."""
    import pandas as pd
    from loopline.adapters import model_store
    from loopline.adapters.specs import get_spec
    from loopline.steps.score import score_day
    from loopline.steps.shadow import set_challenger

    spec = get_spec("churn")
    champion = int(model_store.store().champion("churn").version)
    challenger = max(int(v.version) for v in model_store.store().versions("churn"))
    if challenger != champion:
        set_challenger("churn", challenger, reason="benchmark")
    empty_the_day()
    now = pd.Timestamp.now(tz="UTC")
    seconds, result = timed(score_day, spec, DAY, dag_run_id="bench-shadow", scored_at=now)
    rows = result.rows + (result.shadow_rows or 0)
    return {"seconds": seconds, "floor": None, "rows": rows, "peak_mib": peak_mib()}


def empty_the_day() -> None:
    from loopline.adapters import warehouse

    with warehouse.engine().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in ("predictions", "prediction_reasons"):
            conn.exec_driver_sql(f"DELETE FROM warehouse.{table} WHERE partition_date = '{DAY}'")
            conn.exec_driver_sql(f"VACUUM warehouse.{table}")


def stage_drift(path: str) -> dict:
    from loopline.adapters.specs import get_spec
    from loopline.core.drift import Window, compare_window
    from loopline.steps.check_drift import champion_profile, run_drift_check
    from loopline.steps.published import read_window

    spec = get_spec("churn")
    seconds, _ = timed(run_drift_check, spec, DAY, dag_run_id="bench")
    peak = peak_mib()
    _, _, profile = champion_profile(spec, DAY)
    started = time.perf_counter()
    frame = read_window(spec, DAY, DAY, [*profile.numeric, *profile.categorical])
    window = Window(profile)
    window.update(frame)
    compare_window(spec, window)
    floor = time.perf_counter() - started
    return {"seconds": seconds, "floor": floor, "rows": len(frame), "peak_mib": peak}


def stage_train(path: str) -> dict:
    from loopline.adapters.specs import get_spec
    from loopline.steps.train import run_training

    spec = get_spec("churn")
    end = DAY + dt.timedelta(days=int(os.environ["BENCH_TRAIN_DAYS"]))
    seconds, result = timed(run_training, spec, end, dag_run_id="bench-window")
    rows = result.rows_train + result.rows_validation + result.rows_holdout
    return {"seconds": seconds, "floor": None, "rows": rows, "peak_mib": peak_mib()}


STAGES = {
    "ingest": stage_ingest,
    "validate": stage_validate,
    "predict": stage_predict,
    "reasons": stage_reasons,
    "reasons_approx": stage_reasons,
    "drift": stage_drift,
    "shadow": stage_shadow,
    "train": stage_train,
}


WARM_UP = {
    "ingest": ["loopline.steps.ingest"],
    "validate": ["loopline.steps.validate", "great_expectations"],
    "predict": ["loopline.steps.score", "mlflow.sklearn", "xgboost"],
    "reasons": ["loopline.steps.score", "mlflow.sklearn", "xgboost"],
    "reasons_approx": ["loopline.steps.score", "mlflow.sklearn", "xgboost"],
    "drift": ["loopline.steps.check_drift", "scipy.stats", "mlflow"],
    "shadow": ["loopline.steps.score", "mlflow.sklearn", "xgboost"],
    "train": ["loopline.steps.train", "mlflow.sklearn", "xgboost"],
}


def child(stage: str, path: str) -> None:
    """Run one stage in this (fresh) process and print its figures as JSON. The stage's imports
    are timed apart ("start-up"): a worker pays them once per process, not once per day. The
    peak memory is the stage's own, read before its floor runs."""
    started = time.perf_counter()
    for module in WARM_UP[stage]:
        importlib.import_module(module)
    startup = time.perf_counter() - started
    result = STAGES[stage](path)
    print(json.dumps({**result, "startup": startup}))


def in_fresh_process(stage: str, path: str, env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", stage, "--path", path],
        env={**os.environ, **env, "BENCH_REASONS": "approximate" if "approx" in stage else "exact"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"stage {stage} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- scale-out, PostgreSQL bytes ---------------------------------------------------------------


def two_shards_vs_one(env: dict) -> dict:
    """Score the published day as 2 shards in 2 processes at once, vs 1 process for both: the
    wall time, the slowest process's scoring time (imports left out) and the CPU seconds of the
    scoring processes (what sharding adds in work, whatever the cores)."""
    from loopline.adapters.specs import get_spec
    from loopline.steps.score import plan_scoring

    shards = [s for s in plan_scoring(get_spec("churn"), DAY) if s.role == "champion"]
    if len(shards) < 2:
        return {}
    code = (
        "import json,sys,time;from loopline.adapters.specs import get_spec;"
        "from loopline.steps.score import ScoringShard, score_shard;"
        "shards=[ScoringShard(**s) for s in json.loads(sys.argv[1])];t=time.perf_counter();"
        "[score_shard(get_spec('churn'), s) for s in shards];print(time.perf_counter()-t)"
    )

    def run(groups: list[list]) -> tuple[float, float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", code, json.dumps([s.as_dict() for s in group])],
                env={**os.environ, **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            for group in groups
        ]
        scoring = max(float(p.communicate()[0].decode().split()[-1]) for p in processes)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        return wall, scoring, cpu

    one = run([shards])
    two = run([[s] for s in shards])
    return {"shards": len(shards), "one_process": one, "parallel": two}


def warehouse_bytes() -> int:
    from loopline.adapters import warehouse

    return int(
        warehouse.query(
            "SELECT sum(pg_total_relation_size(format('%%I.%%I', schemaname, tablename))) AS b "
            "FROM pg_tables WHERE schemaname = 'warehouse'"
        ).b[0]
    )


def table_bytes(table: str) -> int:
    from loopline.adapters import warehouse

    return int(warehouse.query(f"SELECT pg_total_relation_size('warehouse.{table}') AS b").b[0])


# --- report --------------------------------------------------------------------------------------


def line(name: str, result: dict) -> str:
    rate = result["rows"] / result["seconds"] if result["seconds"] else 0
    floor = result.get("floor")
    ratio = f"{result['seconds'] / floor:5.2f}x" if floor else "    -"
    floor_text = f"{floor:7.2f}s" if floor else "       -"
    return (
        f"  {name:<9}{result['seconds']:8.2f}s {rate:>12,.0f} rows/s   floor {floor_text}  "
        f"ratio {ratio}   start-up {result['startup']:5.2f}s   "
        f"peak RSS {result['peak_mib']:7.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the benchmark day")
    parser.add_argument("--shard-rows", type=int, default=None, help="default: half the day")
    parser.add_argument("--train-window-rows", type=int, default=0, help="0: skip the training")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path)
        return
    with tempfile.TemporaryDirectory(prefix="loopline-bench-") as folder:
        tmp = Path(folder)
        env = environment(tmp)
        os.environ.update(env)
        write_spec(tmp, args.shard_rows or max(args.rows // 2, 1000))
        from loopline.adapters import warehouse
        from loopline.dev.pgserver import LocalPostgres

        server = LocalPostgres(tmp / "postgres")  # durable, as the embedded default
        server.start()
        env.update(server.environment())
        os.environ.update(server.environment())
        try:
            warehouse.upgrade()
            print(
                f"training a champion on {TRAIN_DAYS} days of {TRAIN_ROWS:,} rows ...", flush=True
            )
            train_champion()
            print(f"simulating one day of {args.rows:,} rows ...", flush=True)
            path = simulate_day(args.rows)
            before = warehouse_bytes()
            print(
                f"\none day of {args.rows:,} rows (landing Parquet "
                f"{Path(path).stat().st_size / 2**20:,.0f} MiB), each stage in a fresh process:"
            )
            results, sizes = {}, {}
            stages = ("ingest", "validate", "predict", "reasons", "reasons_approx", "drift")
            for stage in (*stages, "shadow"):
                result = results[stage] = in_fresh_process(stage, path, env)
                print(line(stage, result), flush=True)
                if stage == "predict":  # before the shadow stage re-scores the day
                    sizes = {t: table_bytes(t) for t in ("predictions", "predictions_staging")}
                    grown = warehouse_bytes() - before
                if "landing_floor" in result:
                    print(
                        f"{'':>11}floor of landing the rows (a bare COPY into a new durable table "
                        f"with the predictions' two indexes): {result['landing_floor']:.2f}s",
                        flush=True,
                    )
            for stage, method in (("reasons", "exact"), ("reasons_approx", "approximate")):
                reasons = results[stage]["seconds"] - results["predict"]["seconds"]
                print(
                    f"{'':>11}per-prediction reasons (explain.reasons, method {method}) add "
                    f"{reasons:.2f}s to scoring the day: {reasons / (args.rows / 1e6):.2f}s per "
                    f"million rows ({reasons / results['predict']['seconds']:.0%} of the "
                    "predict stage)"
                )
            extra = results["shadow"]["seconds"] - results["predict"]["seconds"]
            print(
                f"{'':>11}shadow deployment adds {extra:.2f}s to scoring the day "
                f"({extra / results['predict']['seconds']:.0%} of the predict stage)"
            )
            millions = args.rows / 1e6
            tables = ("shadow_predictions", "quarantine", "prediction_reasons")
            sizes.update({t: table_bytes(t) for t in tables})
            mib = {t: size / millions / 2**20 for t, size in sizes.items()}
            print(
                f"\n  PostgreSQL, per million input rows, after the predict stage: "
                f"{grown / millions / 2**20:,.1f} MiB added: predictions {mib['predictions']:,.1f}"
                f" MiB, quarantine {mib['quarantine']:,.1f} MiB, staging (emptied; its space is "
                f"reused by the next day) {mib['predictions_staging']:,.1f} MiB; the shadow "
                f"stage adds shadow predictions {mib['shadow_predictions']:,.1f} MiB; "
                f"prediction reasons {mib['prediction_reasons']:,.1f} MiB"
            )
            scale = two_shards_vs_one(env)
            if scale:
                one_wall, one_score, one_cpu = scale["one_process"]
                par_wall, par_score, par_cpu = scale["parallel"]
                print(
                    f"  scoring {scale['shards']} shards, one process: {one_wall:.1f}s wall "
                    f"({one_score:.1f}s scoring, {one_cpu:.1f} CPU s); {scale['shards']} processes "
                    f"at once: {par_wall:.1f}s wall ({par_score:.1f}s scoring, {par_cpu:.1f} CPU s)"
                    f"; speed-up {one_wall / par_wall:.2f}x wall, {one_score / par_score:.2f}x "
                    f"scoring on {os.cpu_count()} cores shared with PostgreSQL"
                )
            if args.train_window_rows:
                train_window(args, env, path)
        finally:
            warehouse.engine().dispose()
            server.stop()


def train_window(args, env: dict, path: str) -> None:
    """Validate days until the window holds ``--train-window-rows`` rows, then train on it."""
    from loopline.adapters.specs import get_spec
    from loopline.steps.labels import sync_labels
    from loopline.steps.validate import validate_day

    spec = get_spec("churn")
    days = max(args.train_window_rows // args.rows, 1)
    for i in range(1, days):
        day = DAY + dt.timedelta(days=i)
        simulate_day(args.rows, day, seed=7 + i)
        validate_day(spec, day, run_id="bench-window")
    sync_labels(spec, DAY + dt.timedelta(days=days), run_id="bench")
    env = {**env, "BENCH_TRAIN_DAYS": str(days)}
    result = in_fresh_process("train", path, env)
    print(
        f"  training over a window of {days * args.rows:,} rows (max_rows "
        f"{spec.training.max_rows:,}): {result['seconds']:.1f}s, {result['rows']:,} rows used, "
        f"peak RSS {result['peak_mib']:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
