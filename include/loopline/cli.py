"""The ``loopline`` command: embedded warehouse, simulator, running days, summaries."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loopline import config

DEMO_START = dt.date(2026, 1, 1)


def _server():
    from loopline.pgserver import LocalPostgres

    return LocalPostgres(config.state_dir() / "postgres")


def prepare_airflow() -> None:
    """Point Airflow at the state folder and make sure its metadata DB is migrated."""
    for key, value in config.airflow_environment().items():
        os.environ.setdefault(key, value)
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def cmd_db(args: argparse.Namespace) -> int:
    server = _server()
    if args.action == "start":
        url = server.start()
        from loopline import warehouse

        revision = warehouse.upgrade(url)
        print(f"warehouse running: {url} (schema at revision {revision})")
    elif args.action == "stop":
        server.stop()
        print("warehouse stopped")
    elif args.action == "status":
        running = server.is_running()
        print(f"warehouse {'running: ' + server.url() if running else 'stopped'}")
        return 0 if running else 1
    elif args.action == "upgrade":
        from loopline import warehouse

        print(f"warehouse schema at revision {warehouse.upgrade()}")
    elif args.action == "url":
        print(_warehouse_url(args.analyst))
    elif args.action == "psql":
        url = _warehouse_url(args.analyst).replace("+psycopg2", "")
        os.execvp("psql", ["psql", url])
    return 0


def _warehouse_url(analyst: bool) -> str:
    """The pipeline's URL (writer role), or the same server as the read-only analyst role."""
    return config.analyst_url() if analyst else config.warehouse_url()


def cmd_simulate(args: argparse.Namespace) -> int:
    from loopline.simulate import Scenario, simulate

    if args.model != "churn":
        raise SystemExit(
            f"the simulator writes data for the 'churn' model only, not '{args.model}'"
        )
    written = simulate(
        landing=args.landing or config.landing_root(),
        labels=args.labels or config.labels_root(),
        start=args.start,
        days=args.days,
        rows_per_day=args.rows,
        seed=args.seed,
        scenarios=[Scenario.parse(s) for s in args.scenario],
        label_delay_days=args.label_delay,
        file_format=args.format,
    )
    for day in written:
        notes = []
        if day.corrupted:
            notes.append(f"{len(day.corrupted)} corrupted rows")
        if day.renamed:
            notes.append(f"renamed {day.renamed}")
        print(
            f"{day.date}  {day.rows:>7} rows  {day.positives:>5} positives  {day.path}  "
            + "; ".join(notes)
        )
    return 0


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so Airflow's too) to a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def run_days(model: str, days: list[dt.date], dag_suffix: str = "daily") -> dict[dt.date, str]:
    """Run a model's DAG for each day through Airflow's own task execution (``dag.test``).

    Airflow's task logs go to ``$LOOPLINE_HOME/logs/<dag>.log``; this prints one line a day.
    """
    prepare_airflow()
    from airflow.dag_processing.dagbag import DagBag

    dag_id = f"{model}_{dag_suffix}"
    log_path = config.state_dir() / "logs" / f"{dag_id}.log"
    with output_to(log_path):
        dag = DagBag(str(config.REPO_ROOT / "dags")).get_dag(dag_id)
    if dag is None:
        raise SystemExit(f"no DAG '{dag_id}': is include/specs/{model}.yaml valid? See {log_path}")
    print(f"  (Airflow task logs: {log_path})")
    states = {}
    for day in days:
        started = time.monotonic()
        with output_to(log_path):
            run = dag.test(run_conf={"partition_date": day.isoformat()})
        states[day] = str(run.state)
        print(f"  {dag_id} {day}: {run.state} ({time.monotonic() - started:.1f}s)", flush=True)
    return states


def day_summary(model: str):
    from loopline import warehouse

    return warehouse.query(
        "SELECT partition_date, rows_read, rows_clean, rows_quarantined, success, error "
        "FROM warehouse.validation_results WHERE model = :m ORDER BY partition_date",
        {"m": model},
    )


def print_summary(model: str) -> None:
    frame = day_summary(model)
    print(f"\n{'date':<12}{'read':>8}{'clean':>8}{'quarant.':>10}  status")
    for row in frame.itertuples():
        status = "ok" if row.success else f"FAILED: {row.error}"
        print(
            f"{row.partition_date!s:<12}{row.rows_read:>8}{row.rows_clean:>8}"
            f"{row.rows_quarantined:>10}  {status}"
        )
    if not frame.empty:
        print(
            f"{'total':<12}{frame.rows_read.sum():>8}{frame.rows_clean.sum():>8}"
            f"{frame.rows_quarantined.sum():>10}"
        )


def cmd_run(args: argparse.Namespace) -> int:
    days = [args.start + dt.timedelta(days=i) for i in range((args.end - args.start).days + 1)]
    states = run_days(args.model, days)
    print_summary(args.model)
    return 0 if all(s == "success" for s in states.values()) else 1


def cmd_summary(args: argparse.Namespace) -> int:
    print_summary(args.model)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from loopline import registry

    try:
        result = registry.rollback(args.model, args.to_version, reason=args.reason)
    except registry.RollbackError as error:
        print(f"loopline rollback: {error}", file=sys.stderr)
        return 1
    print(f"{args.model}: champion v{result['previous_champion']} -> v{result['champion']}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from loopline import registry

    for e in registry.history(args.model).itertuples():
        previous = (
            f" (was v{int(e.previous_champion)})"
            if e.previous_champion == e.previous_champion
            else ""
        )
        print(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}  v{e.version:<3} {e.event:<12}{previous}  "
            + "; ".join(e.reasons)
        )
    return 0


def _local_airflow(port: int = 8080):
    """The local Airflow stack of `make run`: its home, and its metadata on the embedded
    PostgreSQL (started if needed)."""
    from loopline.stack import LocalAirflow

    server = _server()
    server.start()
    return LocalAirflow(config.state_dir() / "airflow", server.url("airflow"), port=port)


def cmd_airflow(args: argparse.Namespace) -> int:
    """Airflow's own CLI against the local stack (the same home and metadata database)."""
    airflow = _local_airflow()
    program = str(Path(sys.executable).with_name("airflow"))
    os.execve(program, [program, *args.args], airflow.environment())


def cmd_up(args: argparse.Namespace) -> int:
    """Only Airflow (api-server, scheduler, dag-processor, triggerer) until Ctrl-C: the local
    stack without `make run`'s simulation and backfills."""
    airflow = _local_airflow(args.port)
    airflow.migrate()
    with airflow.running():
        airflow.wait_healthy()
        print(f"Airflow UI http://localhost:{args.port}  login: admin / {airflow.password()}")
        airflow.stay_up()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from loopline.demo import run_demo

    return run_demo(
        days=args.days, rows=args.rows, seed=args.seed, port=args.port, keep_up=not args.exit
    )


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="loopline", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the embedded PostgreSQL warehouse")
    db.add_argument("action", choices=["start", "stop", "status", "upgrade", "url", "psql"])
    db.add_argument("--analyst", action="store_true", help="url/psql as the read-only analyst role")
    db.set_defaults(func=cmd_db)

    sim = sub.add_parser("simulate", help="write simulated daily files and late labels")
    sim.add_argument("--model", default="churn")
    sim.add_argument("--start", type=_date, default=DEMO_START)
    sim.add_argument("--days", type=int, default=30)
    sim.add_argument("--rows", type=int, default=2000, help="rows per day")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--scenario",
        action="append",
        default=[],
        help="kind[:start=N,strength=X,days=N,features=a+b]; repeatable",
    )
    sim.add_argument("--label-delay", type=int, default=7, help="days until labels arrive")
    sim.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    sim.add_argument("--landing", help="landing zone root (default: $LOOPLINE_LANDING)")
    sim.add_argument("--labels", help="labels root (default: $LOOPLINE_LABELS)")
    sim.set_defaults(func=cmd_simulate)

    run = sub.add_parser("run", help="run a model's daily DAG for a range of days (dag.test)")
    run.add_argument("model")
    run.add_argument("--start", type=_date, required=True)
    run.add_argument("--end", type=_date, required=True)
    run.set_defaults(func=cmd_run)

    summary = sub.add_parser("summary", help="per-day counts read/clean/quarantined")
    summary.add_argument("model")
    summary.set_defaults(func=cmd_summary)

    rollback = sub.add_parser(
        "rollback", help="point the champion alias back at an earlier version"
    )
    rollback.add_argument("model")
    rollback.add_argument("--to-version", type=int, help="default: the previous champion")
    rollback.add_argument("--reason", default="manual rollback (CLI)")
    rollback.set_defaults(func=cmd_rollback)

    history = sub.add_parser("history", help="promotions, rejections and rollbacks of a model")
    history.add_argument("model")
    history.set_defaults(func=cmd_history)

    airflow = sub.add_parser(
        "airflow", help="Airflow's CLI against the local stack, e.g. `loopline airflow dags list`"
    )
    airflow.add_argument("args", nargs=argparse.REMAINDER, help="arguments for `airflow`")
    airflow.set_defaults(func=cmd_airflow)

    up = sub.add_parser("up", help="start only the local Airflow (UI, scheduler, ...) until Ctrl-C")
    up.add_argument("--port", type=int, default=8080, help="Airflow UI / API port")
    up.set_defaults(func=cmd_up)

    demo = sub.add_parser("demo", help="the main job of `make run`: the loop through Airflow")
    demo.add_argument("--days", type=int, default=56)
    demo.add_argument("--rows", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--port", type=int, default=8080, help="Airflow UI / API port")
    demo.add_argument("--exit", action="store_true", help="stop Airflow after the summary")
    demo.set_defaults(func=cmd_demo)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
