"""The ``loopline`` command: embedded warehouse, simulator, running and replaying a model's DAGs,
summaries, history and rollback, the local Airflow stack and the demo of `make run`."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from loopline.adapters import settings
from loopline.core.errors import LooplineError, SpecError

if TYPE_CHECKING:
    from loopline.dev.pgserver import LocalPostgres

DEMO_START = dt.date(2026, 1, 1)
DAG_KINDS = ("daily", "labels", "train", "rollback")


def _server():
    from loopline.dev.pgserver import LocalPostgres

    return LocalPostgres(settings.embedded_dir())


def _spec(name: str):
    """The model's spec, or a clean exit with the spec's own error (file and field)."""
    from loopline.adapters.specs import get_spec

    return get_spec(name)


def airflow_metadata_url() -> str:
    """The one Airflow metadata database of this checkout: ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``
    if set, else the embedded PostgreSQL's ``airflow`` database (started if needed): the CLI's
    runs, `loopline airflow ...`, `loopline up` and `make run` all read and write the same one."""
    configured = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if configured:
        return configured
    server = _server()
    server.start()
    return server.url("airflow")


def prepare_airflow() -> None:
    """Point Airflow at the state folder and the one metadata database, make sure it is
    migrated, and fail tasks at once (no retries): a person at a terminal wants the message
    now."""
    for key, value in settings.airflow_environment().items():
        os.environ.setdefault(key, value)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = airflow_metadata_url()
    os.environ.setdefault("LOOPLINE_TASK_RETRIES", "0")
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(Path(sys.executable).with_name("airflow")), "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def cmd_db(args: argparse.Namespace) -> int:
    server = _server()
    if args.action == "start":
        server.start()
        from loopline.adapters import warehouse

        revision = warehouse.upgrade(server.url("warehouse"))
        from loopline.adapters import model_store

        model_store.store().prepare()  # MLflow's tables, once (tasks starting together would race)
        print(f"warehouse running on 127.0.0.1:{server.port} (schema at revision {revision})")
    elif args.action == "stop":
        server.stop()
        print("warehouse stopped")
    elif args.action == "status":
        running = server.is_running()
        print(f"warehouse {'running on 127.0.0.1:' + str(server.port) if running else 'stopped'}")
        return 0 if running else 1
    elif args.action == "upgrade":
        from loopline.adapters import warehouse

        print(f"warehouse schema at revision {warehouse.upgrade()}")
    elif args.action == "url":
        print(_warehouse_url(args.analyst))
    elif args.action == "psql":
        # The password travels in the environment, never in the process's arguments.
        url, password = settings.libpq_url(_warehouse_url(args.analyst))
        if password:
            os.environ["PGPASSWORD"] = password
        os.execvp("psql", ["psql", url])
    return 0


def _warehouse_url(analyst: bool) -> str:
    """The pipeline's URL (writer role), or the same server as the read-only analyst role."""
    if analyst:
        return settings.analyst_url(with_password=True)
    return settings.warehouse_url()


def cmd_simulate(args: argparse.Namespace) -> int:
    from loopline.dev.simulate import Scenario, simulate

    if args.model != "churn":
        raise SystemExit(
            f"the simulator writes data for the 'churn' model only, not '{args.model}'"
        )
    written = simulate(
        landing=args.landing or settings.landing_root(),
        labels=args.labels or settings.labels_root(),
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
            f"{day.date}  {day.rows:>9} rows  {day.positives:>7} positives  {day.path}  "
            + "; ".join(notes)
        )
    return 0


def _runner():
    from loopline.airflow.runner import Runner

    prepare_airflow()
    runner = Runner()
    print(f"  (Airflow task logs: {runner.log_path})", flush=True)
    for run_id in runner.healed:
        print(f"  marked failed: {run_id} (the loopline command that ran it is gone)", flush=True)
    return runner


def _days(args: argparse.Namespace) -> list[dt.date]:
    from loopline.airflow.runner import days_between

    if args.end < args.start:
        raise SystemExit(f"--end {args.end} is before --start {args.start}")
    return days_between(args.start, args.end)


def cmd_run(args: argparse.Namespace) -> int:
    """Run one DAG kind of a model for each day of a range."""
    spec = _spec(args.model)
    runner, ok = _runner(), True
    dag_id = f"{spec.name}_{args.dag}"
    for day in _days(args):
        key = "end_date" if args.dag == "train" else "partition_date"
        outcome = runner.run(dag_id, {key: day.isoformat()}, day.isoformat())
        print(outcome.line(), flush=True)
        ok &= outcome.ok
    if args.dag == "daily":
        print_summary(spec.name)
    return 0 if ok else 1


def cmd_dag(args: argparse.Namespace) -> int:
    """Run any DAG of the project (a hand-written one too) with ``dag.test``: once with the
    given conf, or once per day of ``--start .. --end`` with ``partition_date`` set."""
    import json

    try:
        conf = json.loads(args.conf) if args.conf else {}
    except json.JSONDecodeError as error:
        raise SystemExit(f"loopline dag: --conf is not JSON: {error}") from error
    if not isinstance(conf, dict):
        raise SystemExit("loopline dag: --conf must be a JSON object")
    runner, ok = _runner(), True
    if (args.start is None) != (args.end is None):
        raise SystemExit("loopline dag: give both --start and --end, or neither")
    days = _days(args) if args.start is not None else [None]
    for day in days:
        run_conf = {**conf, "partition_date": day.isoformat()} if day else conf
        outcome = runner.run(args.dag_id, run_conf, day.isoformat() if day else "(once)")
        print(outcome.line(), flush=True)
        ok &= outcome.ok
    return 0 if ok else 1


def cmd_train(args: argparse.Namespace) -> int:
    spec = _spec(args.model)
    runner = _runner()
    conf = {"end_date": args.end_date.isoformat(), "reason": args.reason, "seed": args.seed}
    outcome = runner.run(f"{spec.name}_train", conf, args.end_date.isoformat())
    print(outcome.line(), flush=True)
    print_history(spec.name)
    return 0 if outcome.ok else 1


def cmd_replay(args: argparse.Namespace) -> int:
    """Day by day as the scheduler would: daily, labels, the trainings the trigger queued and
    those ``training.cron`` starts. Every run prints what it skipped and why (no champion yet,
    too few labelled days), so a replay that scores nothing says so."""
    spec = _spec(args.model)
    runner, ok, skipped = _runner(), True, 0
    for outcome in runner.replay(spec, _days(args), scheduled=not args.no_schedule):
        print(outcome.line(), flush=True)
        ok &= outcome.ok
        skipped += len(outcome.skipped)
    print_summary(spec.name)
    print_history(spec.name)
    if skipped:
        print(
            f"\n{spec.name}: {skipped} task(s) skipped, reasons above; `loopline history "
            f"{spec.name}` and the Models view show what the loop decided"
        )
    return 0 if ok else 1


def print_summary(model: str) -> None:
    from loopline.steps import digest

    print()
    print("\n".join(digest.days(model)))


def print_history(model: str) -> None:
    from loopline.steps import digest

    print("\n".join(digest.history(model)))


def cmd_summary(args: argparse.Namespace) -> int:
    _spec(args.model)
    print_summary(args.model)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from loopline.steps.rollback import rollback

    result = rollback(_spec(args.model).name, args.to_version, reason=args.reason)
    print(f"{args.model}: champion v{result.previous_champion} -> v{result.champion}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    print_history(_spec(args.model).name)
    return 0


def cmd_challenger(args: argparse.Namespace) -> int:
    """Put a version in shadow, promote the challenger, or retire it (recorded). Promoting or
    retiring acts on the current challenger: a ``--version`` that is not it is refused."""
    from loopline.adapters import model_store
    from loopline.steps import shadow

    model = _spec(args.model).name
    if args.action == "set":
        if args.version is None:
            raise SystemExit("loopline challenger set: give --version")
        shadow.set_challenger(model, args.version, reason=args.reason)
        print(f"{model}: v{args.version} scores in shadow from the next daily run")
        return 0
    challenger = model_store.store().challenger(model)
    current = int(challenger.version) if challenger is not None else None
    if args.version is not None and args.version != current:
        now = f"v{current} is" if current is not None else "there is none"
        raise SystemExit(
            f"loopline challenger {args.action}: v{args.version} is not {model}'s challenger "
            f"({now}); `loopline challenger set {model} --version {args.version}` makes it one"
        )
    if args.action == "promote":
        champion = model_store.store().champion(model)
        over = f" over champion v{champion.version}" if champion is not None else ""
        print(f"{model}: promoting challenger v{current}{over} ({args.reason})", flush=True)
        print(f"{model}: v{shadow.promote(model, reason=args.reason)} is the champion")
    else:
        print(f"{model}: v{shadow.retire(model, reason=args.reason)} retired from shadow")
    return 0


def _local_airflow(port: int = 8080):
    """The local Airflow stack of `make run`: its home, and the one metadata database."""
    from loopline.dev.stack import LocalAirflow

    return LocalAirflow(settings.state_dir() / "airflow", airflow_metadata_url(), port=port)


def cmd_approve(args: argparse.Namespace) -> int:
    """Answer the model's promotion that waits for a person (gate.approval: required) on the
    running local stack (`make run` or `loopline up`)."""
    from loopline.dev import approvals
    from loopline.dev.stack import LocalAirflow

    model = _spec(args.model).name
    # Only its REST API is asked (as its admin, whose generated password is in its home): no
    # metadata database, nothing started.
    airflow = LocalAirflow(settings.state_dir() / "airflow", "", port=args.port)
    try:
        approvals.answer(airflow, model, approve=not args.reject, comment=args.comment)
    except LookupError as exc:
        raise SystemExit(f"loopline approve: {exc}") from None
    except OSError as exc:  # the stack is not running
        raise SystemExit(
            f"loopline approve: no local Airflow answers on port {args.port} ({exc}); start "
            "it with `loopline up`, or answer in the UI's Required Actions"
        ) from None
    verdict = "rejected" if args.reject else "approved"
    print(f"{model}: {verdict}; the train DAG records it (`loopline history {model}`)")
    return 0


def cmd_airflow(args: argparse.Namespace) -> int:
    """Airflow's own CLI against the local stack (the same home and metadata database)."""
    airflow = _local_airflow()
    program = str(Path(sys.executable).with_name("airflow"))
    os.execve(program, [program, *args.args], airflow.environment())


def cmd_up(args: argparse.Namespace) -> int:
    """Only Airflow (api-server, scheduler, dag-processor, triggerer) until Ctrl-C, SIGTERM or
    SIGHUP: the local stack without `make run`'s simulation and backfills. Stops every process
    it started, the embedded PostgreSQL too if it was not running before. With ``--executor
    celery``: the team setup's topology on loopback (a Redis broker, an S3-API server with the
    lake and MLflow's artifacts, the MLflow tracking server, N Celery workers with folders of
    their own; loopline.dev.cluster)."""
    from loopline.dev.stack import LocalAirflow, stop_on_signals

    server = _server()
    with stop_on_signals(), server.running():
        if args.executor == "celery":
            return _up_cluster(server, args)
        airflow = LocalAirflow(
            settings.state_dir() / "airflow", server.url("airflow"), port=args.port
        )
        airflow.migrate()
        with airflow.running():
            airflow.wait_healthy()
            print(
                f"Airflow UI {airflow.url}  login: admin / {airflow.password()}  "
                f"(models: {airflow.url}/loopline/)",
                flush=True,
            )
            airflow.stay_up()
    return 0


def _up_cluster(server: LocalPostgres, args: argparse.Namespace) -> int:
    from loopline.adapters import warehouse
    from loopline.dev.cluster import LocalCluster

    warehouse.upgrade(server.url("warehouse"))  # the workers' tasks write to it at once
    cluster = LocalCluster(
        settings.state_dir() / "cluster", workers=args.workers, port=args.port, server=server
    )
    try:
        with cluster.running():
            airflow = cluster.airflow
            airflow.wait_healthy()
            endpoints = cluster.endpoints
            print(
                f"Airflow UI {airflow.url}  login: admin / {airflow.password()}  "
                f"(CeleryExecutor, {args.workers} worker(s))\n"
                f"  broker redis://{endpoints.redis}  S3 {endpoints.s3} (lake, landing, labels, "
                f"reports: s3://loopline/, MLflow artifacts: s3://mlflow/)\n"
                f"  MLflow {endpoints.mlflow}  workers' folders: {cluster.root}/worker<N>/\n"
                f"  the same settings in another shell: source {cluster.root / 'env.sh'}",
                flush=True,
            )
            airflow.stay_up()
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from loopline.dev.demo import run_demo

    options = {"days": args.days, "rows": args.rows}
    try:
        return run_demo(
            **{key: value for key, value in options.items() if value is not None},
            seed=args.seed,
            port=args.port,
            keep_up=not args.exit,
        )
    except ValueError as error:
        raise SystemExit(f"loopline demo: {error}") from error


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _model(text: str) -> str:
    from loopline.adapters.specs import check_model_name

    try:
        return check_model_name(text)
    except SpecError as error:
        raise argparse.ArgumentTypeError(error.detail) from error


def _range(command: argparse.ArgumentParser) -> None:
    command.add_argument("model", type=_model)
    command.add_argument("--start", type=_date, required=True)
    command.add_argument("--end", type=_date, required=True)


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
    sim.add_argument("--rows", type=int, default=2000, help="rows per day (any number)")
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

    run = sub.add_parser("run", help="run one DAG of a model for each day of a range (dag.test)")
    _range(run)
    run.add_argument("--dag", choices=DAG_KINDS, default="daily", help="which DAG (default daily)")
    run.set_defaults(func=cmd_run)

    replay = sub.add_parser(
        "replay",
        help="day by day as the scheduler would: daily, labels, triggered and scheduled trainings",
    )
    _range(replay)
    replay.add_argument(
        "--no-schedule",
        action="store_true",
        help="leave out the trainings training.cron would start (only triggered ones run)",
    )
    replay.set_defaults(func=cmd_replay)

    any_dag = sub.add_parser(
        "dag", help="run any DAG of the project, hand-written ones too (dag.test)"
    )
    any_dag.add_argument(
        "dag_id", help="e.g. churn_custom_daily (see `loopline airflow dags list`)"
    )
    any_dag.add_argument("--start", type=_date, help="first day (sets partition_date)")
    any_dag.add_argument("--end", type=_date, help="last day")
    any_dag.add_argument("--conf", help='the run conf as JSON, e.g. \'{"reason": "..."}\'')
    any_dag.set_defaults(func=cmd_dag)

    train = sub.add_parser("train", help="train, evaluate and gate a model now (dag.test)")
    train.add_argument("model", type=_model)
    train.add_argument("--end-date", type=_date, required=True, help="data available on this day")
    train.add_argument("--reason", default="manual training (CLI)")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(func=cmd_train)

    summary = sub.add_parser("summary", help="per-day counts read/clean/quarantined/scored")
    summary.add_argument("model", type=_model)
    summary.set_defaults(func=cmd_summary)

    rollback = sub.add_parser(
        "rollback", help="point the champion alias back at an earlier version"
    )
    rollback.add_argument("model", type=_model)
    rollback.add_argument("--to-version", type=int, help="default: the previous champion")
    rollback.add_argument("--reason", default="manual rollback (CLI)")
    rollback.set_defaults(func=cmd_rollback)

    history = sub.add_parser("history", help="promotions, rejections and rollbacks of a model")
    history.add_argument("model", type=_model)
    history.set_defaults(func=cmd_history)

    challenger = sub.add_parser(
        "challenger", help="shadow deployment: set a challenger, promote it, or retire it"
    )
    challenger.add_argument("action", choices=["set", "promote", "retire"])
    challenger.add_argument("model", type=_model)
    challenger.add_argument(
        "--version",
        type=int,
        help="set: the version to shadow; promote/retire: refused unless it is the challenger",
    )
    challenger.add_argument("--reason", default="by hand (CLI)")
    challenger.set_defaults(func=cmd_challenger)

    approve = sub.add_parser(
        "approve", help="approve (or --reject) a model's promotion that waits for a person"
    )
    approve.add_argument("model", type=_model)
    approve.add_argument("--reject", action="store_true", help="reject it instead")
    approve.add_argument("--comment", default="", help="why (kept in the model's history)")
    approve.add_argument("--port", type=int, default=8080, help="the local Airflow's port")
    approve.set_defaults(func=cmd_approve)

    airflow = sub.add_parser(
        "airflow", help="Airflow's CLI against the local stack, e.g. `loopline airflow dags list`"
    )
    airflow.add_argument("args", nargs=argparse.REMAINDER, help="arguments for `airflow`")
    airflow.set_defaults(func=cmd_airflow)

    up = sub.add_parser(
        "up", help="start only the local Airflow (UI, scheduler, ...) until Ctrl-C or SIGTERM"
    )
    up.add_argument("--port", type=int, default=8080, help="Airflow UI / API port")
    up.add_argument(
        "--executor",
        choices=["local", "celery"],
        default="local",
        help="local: LocalExecutor; celery: the team setup's topology on loopback",
    )
    up.add_argument(
        "--workers", type=int, default=2, help="Celery workers (with --executor celery)"
    )
    up.set_defaults(func=cmd_up)

    demo = sub.add_parser("demo", help="the main job of `make run`: the loop through Airflow")
    demo.add_argument(
        "--days", type=int, help="simulated days (default 14: 10 before the first training, 4 live)"
    )
    demo.add_argument("--rows", type=int, help="rows per simulated day (default 5000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--port", type=int, default=8080, help="Airflow UI / API port")
    demo.add_argument("--exit", action="store_true", help="stop everything after the summary")
    demo.set_defaults(func=cmd_demo)
    return root


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    # Owner-only files: the state folder holds raw records (landing, lake, quarantine), model
    # artifacts, task logs and generated passwords; nothing of it is for other users.
    os.umask(0o077)
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # stop cleanly, as on Ctrl-C
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("\nloopline: stopped", file=sys.stderr)
        return 130
    except (LooplineError, LookupError) as error:
        print(f"loopline {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
