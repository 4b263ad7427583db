"""Batch-prediction benchmark (run by hand, not in CI): how fast is the scoring task end to end?

    .venv/bin/python benchmarks/batch_predict.py [--rows 1000000] [--memory-rows 1000000 5000000]

On a throwaway PostgreSQL server it loads N clean rows of the churn spec into one day, trains an
XGBoost champion with 300 trees, and measures in the same run:
- loopline: ``predict_day`` end to end (stream rows out of PostgreSQL, score in chunks with the
  model loaded once, COPY into a staging table, swap the day's partition);
- floor: the same rows already in memory as a numeric matrix, bare ``Booster.inplace_predict``
  plus a bare COPY of the result rows into an unindexed table;
- peer: the common pattern, ``DataFrame.to_sql(method="multi")`` of the scored rows (measured on
  a slice, since it is slow);
and the peak memory (max RSS) of the scoring task, in a fresh process, at each --memory-rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

DAY = dt.date(2026, 3, 1)
CHUNK = 200_000


def clean_day(spec, rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` validated churn rows with unique ids (simulated in chunks of 200k)."""
    from loopline.simulate import generate_day

    parts = []
    for i, start in enumerate(range(0, rows, CHUNK)):
        frame, label = generate_day(DAY, i, rows=min(CHUNK, rows - start), seed=seed)
        frame["customer_id"] = f"B{seed}-{i:03d}-" + frame["customer_id"]
        parts.append(frame.assign(label=label))
    return pd.concat(parts, ignore_index=True)


def load_clean(spec, frame: pd.DataFrame) -> None:
    from loopline import warehouse
    from loopline.validate import clean_rows_frame

    rows = frame.assign(__source_file="bench", __row_number=range(len(frame)))
    with warehouse.partition_transaction(spec.name, DAY) as cursor:
        for start in range(0, len(rows), CHUNK):
            part = rows.iloc[start : start + CHUNK]
            warehouse.copy_frame(
                cursor,
                "clean_rows",
                clean_rows_frame(spec, part, "bench").assign(model=spec.name, partition_date=DAY),
            )


def champion(spec, frame: pd.DataFrame):
    from loopline.features import input_columns, preprocessor
    from loopline.predict import Champion
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    train = frame.sample(min(len(frame), 100_000), random_state=0)
    prep = preprocessor(spec).fit(train[input_columns(spec)])
    model = XGBClassifier(
        n_estimators=300,
        max_depth=6,
        learning_rate=0.05,
        tree_method="hist",
        n_jobs=2,
        random_state=0,
    )
    model.fit(prep.transform(train[input_columns(spec)]), train["label"])
    return Champion(spec.name, 1, "bench-run", Pipeline([("features", prep), ("model", model)]))


def measure_loopline(spec, champ) -> float:
    from loopline.predict import predict_day

    started = time.perf_counter()
    result = predict_day(spec, DAY, dag_run_id="bench", champion=champ)
    elapsed = time.perf_counter() - started
    return result["rows"] / elapsed


def measure_floor(spec, champ, frame: pd.DataFrame) -> float:
    from loopline import warehouse
    from loopline.features import input_columns

    matrix = champ.model.named_steps["features"].transform(frame[input_columns(spec)]).to_numpy()
    booster = champ.model.named_steps["model"].get_booster()
    raw = warehouse.engine().raw_connection()
    cursor = raw.cursor()
    cursor.execute("CREATE TEMP TABLE floor_out (entity_id text, score float8)")
    started = time.perf_counter()
    score = booster.inplace_predict(matrix)
    buffer = io.StringIO()
    pd.DataFrame({"entity_id": frame["customer_id"], "score": score}).to_csv(
        buffer, index=False, header=False
    )
    buffer.seek(0)
    cursor.copy_expert("COPY floor_out FROM STDIN WITH (FORMAT csv)", buffer)
    raw.commit()
    elapsed = time.perf_counter() - started
    raw.close()
    return len(frame) / elapsed


def measure_peer(spec, champ, frame: pd.DataFrame, rows: int) -> float:
    from loopline import warehouse
    from loopline.predict import score_chunk

    part = frame.rename(columns={"customer_id": "entity_id"}).head(rows)
    started = time.perf_counter()
    scored = score_chunk(spec, champ, part, day=DAY).assign(
        model=spec.name,
        partition_date=DAY,
        model_version=champ.version,
        mlflow_run_id=champ.run_id,
        dag_run_id="bench",
        scored_at=pd.Timestamp("2026-03-02", tz="UTC"),
    )
    scored.to_sql(
        "peer_out",
        warehouse.engine(),
        schema="public",
        if_exists="replace",
        index=False,
        method="multi",
        chunksize=5_000,
    )
    return len(part) / (time.perf_counter() - started)


def peak_memory(spec, champ, rows: int, folder: Path) -> float:
    """Load a day of ``rows`` rows, then score it in a fresh process; return that process's
    peak RSS in MiB (the scoring task alone: interpreter, libraries, model, chunks)."""
    import joblib
    from loopline import warehouse

    with warehouse.engine().begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM warehouse.clean_rows; DELETE FROM warehouse.predictions"))
    for start in range(0, rows, 1_000_000):
        load_clean(spec, clean_day(spec, min(1_000_000, rows - start), seed=start))
    path = folder / "champion.joblib"
    joblib.dump(champ, path)
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    return float(result.stdout.strip().splitlines()[-1])


def child(model_path: str) -> None:
    import joblib
    from loopline.predict import predict_day
    from loopline.spec import get_spec

    result = predict_day(
        get_spec("churn"), DAY, dag_run_id="bench", champion=joblib.load(model_path)
    )
    print(result["rows"], file=sys.stderr)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the (large) parent across fork+exec.
    status = Path("/proc/self/status").read_text().splitlines()
    print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--peer-rows", type=int, default=100_000)
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[1_000_000, 5_000_000])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    from loopline import warehouse
    from loopline.pgserver import LocalPostgres
    from loopline.spec import get_spec

    with tempfile.TemporaryDirectory(prefix="loopline-bench-") as tmp:
        server = LocalPostgres(Path(tmp) / "postgres")
        server.start()
        os.environ.update(server.environment())
        os.environ["LOOPLINE_HOME"] = tmp
        try:
            warehouse.upgrade()
            spec = get_spec("churn")
            print(
                f"setting up {args.rows:,} clean rows and a 300-tree XGBoost champion ...",
                flush=True,
            )
            frame = clean_day(spec, args.rows)
            load_clean(spec, frame)
            champ = champion(spec, frame)
            loopline = measure_loopline(spec, champ)
            floor = measure_floor(spec, champ, frame)
            peer = measure_peer(spec, champ, frame, args.peer_rows)
            print(f"\nrows/s, {args.rows:,} rows, 300 trees, 2 cores")
            print(f"  loopline predict_day (read, score, COPY, swap)  {loopline:>10,.0f}")
            print(
                f"  floor: inplace_predict + bare COPY               {floor:>10,.0f}"
                f"   loopline/floor = {loopline / floor:.2f}"
            )
            print(
                f"  peer: score + DataFrame.to_sql (multi), {args.peer_rows:,} rows  {peer:>10,.0f}"
                f"   loopline/peer = {loopline / peer:.1f}x"
            )
            for rows in args.memory_rows:
                peak = peak_memory(spec, champ, rows, Path(tmp))
                print(
                    f"  peak RSS of the scoring process, {rows:>9,} rows: {peak:,.0f} MiB",
                    flush=True,
                )
        finally:
            warehouse.engine.cache_clear()
            server.stop()


if __name__ == "__main__":
    main()
