"""`cosim run | sweep | validate | plot | scenario build`: the command line. User errors print one line
each and exit 2."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from mobility.errors import MobilityInputError

from .errors import SettingError, UserError, field_error, writable_dir
from .scenario import load_scenario


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="cosim", description="Vehicular edge learning co-simulator")
    p.add_argument("--version", action="version", version=f"cosim {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a scenario and write its run directory")
    run.add_argument("scenario", nargs="?", help="the scenario file (not with --resume)")
    run.add_argument("--resume", metavar="RUN_DIR",
                     help="continue RUN_DIR's run from its last checkpoint (output.checkpoint_every_rounds)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field, e.g. --set protocol.rounds=5 (repeatable)")
    run.add_argument("--out", help="run directory (default: runs/<name>-seed<seed>, or -2, -3, ... if that holds a run)")
    run.add_argument("--force", action="store_true", help="replace the run already in --out (once the new one is written)")
    run.add_argument("--threads", type=int, default=1,
                     help="PyTorch threads (default 1; results depend on it, so it is in the manifest)")
    run.add_argument("--workers", type=int, default=1,
                     help="train a FedAvg round's vehicles in N processes (the same bytes; default 1: in process)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary table (a failure still prints one line)")
    scen = sub.add_parser("scenario", help="scenario tools").add_subparsers(dest="action", required=True)
    build = scen.add_parser("build", help="build SUMO net, routes and .sumocfg").add_subparsers(
        dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output folder")
    common.add_argument("--duration-s", type=float, default=600.0, help="departures until then")
    common.add_argument("--seed", type=int, default=1, help="randomTrips/duarouter seed (bundles use 1)")
    hw = build.add_parser("highway", parents=[common], help="a straight highway, both directions")
    hw.add_argument("--length-m", type=float, default=5000.0)
    hw.add_argument("--lanes", type=int, default=3, help="lanes per direction")
    hw.add_argument("--vehicles-per-hour", type=float, default=1800.0, help="total insertion rate")
    hw.add_argument("--speed-mps", type=float, default=33.33)
    grid = build.add_parser("urban_grid", parents=[common], help="a Manhattan grid with traffic lights")
    grid.add_argument("--grid-n", type=int, default=5, help="junctions per side")
    grid.add_argument("--block-m", type=float, default=200.0)
    grid.add_argument("--lanes", type=int, default=1, help="lanes per direction")
    grid.add_argument("--vehicles-per-hour", type=float, default=900.0, help="total insertion rate")
    grid.add_argument("--speed-mps", type=float, default=13.89)
    rts = build.add_parser("routes", parents=[common], help="random car trips on an existing net (e.g. SUMO's)")
    rts.add_argument("--net", required=True, help="the .net.xml ($SUMO_HOME/... for the nets SUMO ships)")
    rts.add_argument("--name", required=True, help="writes <out>/<name>.rou.xml")
    rts.add_argument("--vehicles-per-hour", type=float, default=900.0, help="total insertion rate")
    sweep = sub.add_parser("sweep", help="run a scenario over a grid of settings; a run directory each and sweep.csv")
    sweep.add_argument("scenario")
    sweep.add_argument("--vary", action="append", required=True, metavar="KEY=V1,V2",
                       help="a setting and its values, e.g. --vary protocol.dwell_predictor=kinematic,route "
                            "or --vary 'seed=[1, 2, 3]' (repeatable: the grid is their product)")
    sweep.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a fixed override for every run (repeatable)")
    sweep.add_argument("--out", help="sweep directory (default: runs/<name>-sweep)")
    sweep.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes (default 1)")
    sweep.add_argument("--threads", type=int, help="PyTorch threads per run (default: all cores for one job, "
                                                    "the cores shared out for more); results depend on it")
    sweep.add_argument("--resume", action="store_true",
                       help="keep run directories that already hold their run, finished (same scenario, same cosim)")
    _add_executor_args(sweep)
    plot = sub.add_parser("plot", help="plot a run (or sweep) directory into its plots/ folder")
    plot.add_argument("run_dir")
    plot.add_argument("--net", help="a SUMO .net.xml whose roads map.png draws under the vehicles' tracks")
    plot.add_argument("--format", default="png", help="png (default), pdf or svg")
    opt = sub.add_parser("optimize", help="solve one round snapshot with a registered optimizer; print the plan as JSON")
    opt.add_argument("optimizer", help="a registered optimizer (cosim list)")
    opt.add_argument("--instance", metavar="FILE.json",
                     help="the snapshot to solve (a run's snapshots/round-NNNN.json); with --random: where to write it")
    opt.add_argument("--random", type=int, metavar="N", help="write a random N-vehicle instance first, then solve it")
    opt.add_argument("--seed", type=int, default=0, help="seed of the random instance (default 0)")
    opt.add_argument("--scheme", help="scheme of the random instance (its cost model and settings; default: the "
                                      "optimizer's own, else fedavg)")
    sub.add_parser("list", help="the registered schemes, optimizers and selection rules")
    cmp_ = sub.add_parser("compare", help="a scheme against the baselines its module declares, over seeds: compare.csv")
    cmp_.add_argument("scenario")
    cmp_.add_argument("--seeds", type=int, default=3, help="seeds per method: the scenario's seed and the next ones")
    cmp_.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="a fixed override for every run (repeatable)")
    cmp_.add_argument("--baselines", metavar="A,B", help="only these of the declared baselines (default: all)")
    cmp_.add_argument("--out", help="compare directory (default: runs/<name>-compare)")
    cmp_.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes (default 1)")
    cmp_.add_argument("--threads", type=int, help="PyTorch threads per run (as for sweep)")
    cmp_.add_argument("--resume", action="store_true", help="keep finished runs of an interrupted compare")
    _add_executor_args(cmp_)
    cal = sub.add_parser("calibrate", help="measure a scenario's response to a setting").add_subparsers(
        dest="what", required=True)
    quant = cal.add_parser("quant", help="accuracy vs activation bits, fitted O(q) = a(1-exp(-bq))+c (SFLAM)")
    quant.add_argument("scenario")
    quant.add_argument("--bits", default="1,2,3,4,6,8,16,32", help="bit widths to train at (default 1,2,3,4,6,8,16,32)")
    quant.add_argument("--seeds", type=int, default=1, help="seeds per bit width (default 1)")
    quant.add_argument("--rounds", type=int, help="rounds per run (default: the scenario's)")
    quant.add_argument("--tail", type=int, default=5, help="a run's accuracy: its mean over the last rounds (default 5)")
    quant.add_argument("--file", help="the calibration file to write (default: <scenario>.quant.json beside it)")
    quant.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="a fixed override for every run (repeatable)")
    quant.add_argument("--out", help="folder for the runs, calibrate.csv and calibrate.png "
                                     "(default: runs/<name>-calibrate)")
    quant.add_argument("--jobs", type=int, default=1, help="runs at once, in worker processes (default 1)")
    quant.add_argument("--threads", type=int, help="PyTorch threads per run (as for sweep)")
    quant.add_argument("--resume", action="store_true", help="keep finished runs of an interrupted calibration")
    _add_executor_args(quant)
    pre = sub.add_parser("pretrain", help="the scenario's pretrained model (learning.pretrained) to a checkpoint file")
    pre.add_argument("scenario")
    pre.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field (repeatable)")
    pre.add_argument("--out", help="the checkpoint to write (default: <scenario>.pretrained.pt beside it)")
    val = sub.add_parser("validate", help="check scenario files; print every error")
    val.add_argument("scenarios", nargs="+")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    from .rundir import signals_interrupt

    args = _parser().parse_args(argv)
    _one_line_warnings()
    with signals_interrupt():       # Ctrl-C or SIGTERM: the run ends `interrupted`, what was recorded written
        return _main(args)


def _one_line_warnings() -> None:
    """A setting the run cannot honour (SettingWarning) prints as one line on stderr, not Python's two."""
    import warnings

    from .protocols.config import SettingWarning

    plain = warnings.formatwarning

    def fmt(message, category, filename, lineno, line=None):
        if issubclass(category, SettingWarning):
            return f"warning: {message}\n"
        return plain(message, category, filename, lineno, line)

    warnings.formatwarning = fmt


def _main(args) -> int:
    try:
        if args.cmd == "validate":
            return _validate(args)
        if args.cmd == "scenario":
            return _build(args)
        if args.cmd == "sweep":
            return _sweep(args)
        if args.cmd == "optimize":
            return _optimize(args)
        if args.cmd == "list":
            return _list()
        if args.cmd == "compare":
            return _compare(args)
        if args.cmd == "calibrate":
            return _calibrate(args)
        if args.cmd == "pretrain":
            return _pretrain(args)
        if args.cmd == "plot":
            from .plots import plot

            for path in plot(args.run_dir, net=args.net, fmt=args.format):
                print(f"wrote {path}")
            return 0
        return _run(args)
    except (UserError, MobilityInputError) as err:
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(f"interrupted{f' ({exc})' if str(exc) else ''}: a run directory, if one was started, holds what was "
              "recorded so far", file=sys.stderr)
        return 130


def _validate(args) -> int:
    bad = 0
    for path in args.scenarios:
        try:
            load_scenario(path, args.overrides)
            print(f"{path}: ok")
        except UserError as err:
            print(str(err), file=sys.stderr)
            bad += 1
    return 2 if bad else 0


def _build(args) -> int:
    from mobility import builders

    where = f"cosim scenario build {args.what}"
    if args.what == "routes":
        from .scenario import expand_path

        net = Path(expand_path(args.net))
        if not net.is_file():
            raise UserError(field_error(where, "--net", args.net, "an existing .net.xml"))
        try:
            routes = builders.build_routes(args.out, args.name, net, args.vehicles_per_hour, args.duration_s, args.seed)
        except builders.BuildParameterError as e:
            raise UserError(field_error(where, "--" + e.name.replace("_", "-"), e.value, e.expected)) from None
        print(f"wrote {routes}: {routes.read_text().count('<vehicle ')} vehicles")
        return 0
    common = dict(lanes=args.lanes, vehicles_per_hour=args.vehicles_per_hour, duration_s=args.duration_s,
                  seed=args.seed, speed_mps=args.speed_mps)
    try:
        if args.what == "highway":
            files = builders.build_highway(args.out, length_m=args.length_m, **common)
        else:
            files = builders.build_urban_grid(args.out, grid_n=args.grid_n, block_m=args.block_m, **common)
    except builders.BuildParameterError as e:
        raise UserError(field_error(where, "--" + e.name.replace("_", "-"), e.value, e.expected)) from None
    except OSError as e:
        raise UserError(field_error(where, "--out", args.out, f"a folder it can write ({e.strerror})")) from None
    vehicles = files.routes.read_text().count("<vehicle ")
    print(f"wrote {files.net}, {files.routes}, {files.sumocfg}: {vehicles} vehicles")
    return 0


def _progress_line(console):
    """on_done for sweep and compare: one line per finished run."""
    def done(run, row, finished, total) -> None:
        acc = row.get("final_accuracy")
        console.print(f"[{finished}/{total}] {run.run_dir.name}: {row['status']}"
                      + (" (kept from before)" if row.get("kept") else "")
                      + (f", accuracy {acc:.3f}" if isinstance(acc, float) else "")
                      + (f" ({row['detail']})" if row.get("detail") else ""), soft_wrap=True, markup=False)
    return done


def _add_executor_args(parser) -> None:
    """--executor and its settings (sweep, compare, calibrate): where the study's runs execute."""
    from .executors import EXECUTORS

    parser.add_argument("--executor", choices=EXECUTORS, default="pool",
                        help="serial: here, one after another; pool (default): --jobs local processes; "
                             "ray: a Ray task per run in a fresh process (pip install 'cosim[ray]')")
    parser.add_argument("--address", help="ray: an existing cluster (e.g. ray://head:10001 or auto; "
                                          "default: a local Ray instance)")
    parser.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs each run asks for (default 1)")
    parser.add_argument("--gpus-per-run", type=float, default=0.0, help="ray: GPUs each run asks for (default 0)")
    parser.add_argument("--ray-reuse-workers", action="store_true",
                        help="ray: let a worker process take run after run (default: a fresh process per run)")


def _executor(args, where: str):
    from .executors import make_executor

    ray_only = {"--address": args.address, "--cpus-per-run": args.cpus_per_run != 1.0 and args.cpus_per_run,
                "--gpus-per-run": args.gpus_per_run, "--ray-reuse-workers": args.ray_reuse_workers}
    for flag, value in ray_only.items():
        if args.executor != "ray" and value:
            raise UserError(field_error(where, flag, getattr(args, flag[2:].replace("-", "_")), "--executor ray with it"))
    if args.executor != "pool" and args.jobs != 1:
        raise UserError(field_error(where, "--jobs", args.jobs, "--executor pool with it (ray: --cpus-per-run)"))
    return make_executor(args.executor, args.jobs, args.address, args.cpus_per_run, args.gpus_per_run, where,
                         fresh=not args.ray_reuse_workers)


def _sweep(args) -> int:
    from rich.console import Console

    from .sweep import parse_vary, run_sweep

    vary = parse_vary(args.vary)
    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UserError(field_error("cosim sweep", flag, value, ">= 1"))
    out = Path(args.out) if args.out else Path("runs") / f"{load_scenario(args.scenario, args.overrides).name}-sweep"
    console = Console(stderr=True)
    done = _progress_line(console)

    executor = _executor(args, "cosim sweep")
    path = run_sweep(args.scenario, vary, args.overrides, out, on_done=done, resume=args.resume,
                     jobs=args.jobs, threads=args.threads, executor=executor)
    console.print(f"sweep table: {path}", soft_wrap=True, markup=False)
    with open(path, newline="") as fh:
        statuses = [row["status"] for row in csv.DictReader(fh)]
    return 0 if all(s in ("completed", "duration-reached") for s in statuses) else 1


def _optimize(args) -> int:
    import json

    from . import registry
    from .optimizers.api import plan_to_dict, snapshot_to_json
    from .optimizers.constraints import violations
    from .optimizers.instances import random_snapshot
    from .optimizers.io import read_instance

    where = "cosim optimize"
    known = registry.optimizers()
    if args.optimizer not in known:
        raise UserError(field_error(where, "OPTIMIZER", args.optimizer, f"one of {', '.join(map(repr, known))}"))
    if args.random is None and args.instance is None:
        raise UserError(f"{where}: expected --instance FILE.json or --random N")
    entry = known[args.optimizer]
    if args.scheme is None:
        args.scheme = entry.schemes[0] if entry.schemes else "fedavg"
    if args.random is not None:
        if args.random < 1:
            raise UserError(field_error(where, "--random", args.random, ">= 1 vehicles"))
        if args.scheme not in registry.schemes():
            raise UserError(field_error(where, "--scheme", args.scheme,
                                        f"one of {', '.join(map(repr, registry.schemes()))}"))
        if entry.schemes and args.scheme not in entry.schemes:
            raise UserError(field_error(where, "--scheme", args.scheme,
                                        f"a scheme optimizer {args.optimizer!r} plans for: {', '.join(entry.schemes)}"))
        snap = random_snapshot(args.random, args.seed, args.scheme)
        path = Path(args.instance or f"instance-{args.scheme}-n{args.random}-seed{args.seed}.json")
        writable_dir(path.absolute().parent, where, "--instance")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snapshot_to_json(snap) + "\n")
        print(f"wrote {path}", file=sys.stderr)
    else:
        snap = read_instance(args.instance, where)
    if snap.scheme not in registry.schemes():
        raise UserError(field_error(args.instance or where, "scheme", snap.scheme, "a registered scheme (cosim list)"))
    if entry.schemes and snap.scheme not in entry.schemes:
        raise UserError(field_error(str(path if args.random is not None else args.instance), "scheme", snap.scheme,
                                    f"a scheme optimizer {args.optimizer!r} plans for: {', '.join(entry.schemes)}"))
    plan = entry.solve(snap)
    out = {"optimizer": args.optimizer, "instance": str(path if args.random is not None else args.instance),
           **plan_to_dict(plan), "violations": violations(snap, plan)}
    print(json.dumps(out, indent=1))
    return 0 if not out["violations"] else 1


def _list() -> int:
    from . import registry

    for title, table in (("schemes (protocol.scheme)", registry.schemes()),
                         ("optimizers (protocol.optimizer)", registry.optimizers()),
                         ("selection rules (protocol.selection)", registry.selections())):
        print(title)
        width = max(len(n) for n in table)
        for name, entry in table.items():
            print(f"  {name:<{width}}  {entry.summary}")
    return 0


def _compare(args) -> int:
    from rich.console import Console

    from .compare import run_compare

    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads), ("--seeds", args.seeds)):
        if value is not None and value < 1:
            raise UserError(field_error("cosim compare", flag, value, ">= 1"))
    console = Console(stderr=True)
    done = _progress_line(console)

    only = [b.strip() for b in args.baselines.split(",")] if args.baselines else None
    result = run_compare(args.scenario, args.seeds, args.overrides, args.out, only=only, on_done=done,
                         resume=args.resume, jobs=args.jobs, threads=args.threads,
                         executor=_executor(args, "cosim compare"))
    console.print(result.table_md, soft_wrap=True, markup=False)
    console.print(f"compare table: {result.csv_path}", soft_wrap=True, markup=False)
    return 0 if all(s in ("completed", "duration-reached") for s in result.statuses) else 1


def _calibrate(args) -> int:
    from rich.console import Console

    from .calibrate import run_calibration

    try:
        bits = [int(b) for b in args.bits.split(",")]
    except ValueError:
        raise UserError(field_error("cosim calibrate quant", "--bits", args.bits, "comma-separated integers")) from None
    for flag, value in (("--jobs", args.jobs), ("--threads", args.threads), ("--rounds", args.rounds)):
        if value is not None and value < 1:
            raise UserError(field_error("cosim calibrate quant", flag, value, ">= 1"))
    base = args.overrides + ([f"protocol.rounds={args.rounds}"] if args.rounds else [])
    console = Console(stderr=True)
    cal = run_calibration(args.scenario, bits, args.seeds, base, args.out, args.file, args.tail, args.jobs,
                          args.threads, args.resume, on_done=_progress_line(console),
                          executor=_executor(args, "cosim calibrate quant"))
    for p in cal.points:
        console.print(f"  q = {p['bits']:>2}: accuracy {p['accuracy']:.4f}", markup=False)
    console.print(f"O(q) = {cal.a:.4f} (1 - exp(-{cal.b:.4f} q)) + {cal.c:.4f}; wrote {cal.file}",
                  soft_wrap=True, markup=False)
    return 0


def _pretrain(args) -> int:
    """Build the scenario's task (which pretrains, or reads the cache or checkpoint) and save its weights."""
    import torch

    from learning.fl import evaluate

    from .rng import RngStreams
    from .task import build_task

    sc = load_scenario(args.scenario, args.overrides)
    if sc.learning.pretrained is None:
        raise UserError(field_error(args.scenario, "learning.pretrained", None,
                                    "a pretraining setting, e.g. {fraction: 0.2, epochs: 30}"))
    out = Path(args.out) if args.out else Path(args.scenario).with_suffix(".pretrained.pt")
    try:
        task = build_task(sc.learning, RngStreams(sc.seed), sc.base_dir)
    except SettingError as err:
        raise err.with_source(args.scenario) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.save(task.global_state, out)
    except OSError as exc:
        raise UserError(field_error("cosim pretrain", "--out", str(out), f"a file it can write ({exc.strerror})")) from None
    acc, _ = evaluate(task.model, task.global_state, task.test)
    print(f"wrote {out}: {sc.learning.model} pretrained on {len(task.server_indices)} held-out samples, "
          f"test accuracy {acc:.4f}; use it with learning.pretrained.checkpoint: {out}")
    return 0


def _run_dir(args, sc) -> Path:
    """--out, checked: a run already there needs --force. The default folder instead gets the first free
    suffix (-2, -3, ...), so a second run never silently replaces the first."""
    from .rundir import check_replaceable, is_empty_dir

    if args.out:
        run_dir = writable_dir(Path(args.out), "cosim run")
        check_replaceable(run_dir, "cosim run")
        if run_dir.exists() and not is_empty_dir(run_dir) and not args.force:
            raise UserError(field_error("cosim run", "--out", args.out,
                                        "a new folder (it holds a run; --force replaces it once the new one is written)"))
        return run_dir
    base = Path("runs") / f"{sc.name}-seed{sc.seed}"
    run_dir, n = base, 1
    while not args.force and run_dir.exists() and not is_empty_dir(run_dir):
        n += 1
        run_dir = base.with_name(f"{base.name}-{n}")
    check_replaceable(run_dir, "cosim run")
    return writable_dir(run_dir, "cosim run")


def _run(args) -> int:
    import torch

    from .progress import RunProgress
    from .run import run_scenario

    for flag, value in (("--threads", args.threads), ("--workers", args.workers)):
        if value < 1:
            raise UserError(field_error("cosim run", flag, value, ">= 1"))
    if args.resume:
        return _resume(args)
    if args.scenario is None:
        raise UserError("cosim run: expected a scenario file (or --resume RUN_DIR)")
    sc = load_scenario(args.scenario, args.overrides)
    run_dir = _run_dir(args, sc)
    torch.set_num_threads(args.threads)
    try:
        with RunProgress(sc.protocol.rounds, sc.duration_s, quiet=args.quiet) as progress:
            result = run_scenario(sc, run_dir, on_round=progress.update, overrides=args.overrides, workers=args.workers)
    except SettingError as err:
        raise err.with_source(args.scenario) from None
    except KeyboardInterrupt as exc:
        raise KeyboardInterrupt("; ".join(filter(None, [str(exc), _resume_hint(run_dir)]))) from None
    if sc.output.plots and result.rounds:
        from .plots import plot_run

        plot_run(run_dir)
    ok = result.status in ("completed", "duration-reached")
    hint = "" if ok else _resume_hint(run_dir)
    if not args.quiet:
        progress.summary(result, args.overrides)
        if hint:
            print(hint, file=sys.stderr)
    elif not ok:
        print(f"{run_dir}: run ended {result.status}: {result.summary.get('detail') or 'no detail'}"
              + (f"; {hint}" if hint else ""), file=sys.stderr)
    return 0 if ok else 1


def _resume_hint(run_dir: Path) -> str:
    """How to go on, when the run left a checkpoint."""
    from . import checkpoint

    return f"it can go on from its checkpoint: cosim run --resume {run_dir}" if checkpoint.exists(run_dir) else ""


def _resume(args) -> int:
    """cosim run --resume RUN_DIR: the run's own scenario, overrides and threads, from its checkpoint."""
    from .run import resume_run

    for flag, given in (("SCENARIO", args.scenario), ("--set", args.overrides), ("--out", args.out),
                        ("--force", args.force), ("--threads", args.threads != 1)):
        if given:
            raise UserError(field_error("cosim run --resume", flag, given if given is not True else "given",
                                        "nothing: a resumed run keeps its scenario, overrides, folder and threads"))
    run_dir = Path(args.resume)
    result = resume_run(run_dir, workers=args.workers)
    ok = result.status in ("completed", "duration-reached")
    if not ok:
        print(f"{run_dir}: run ended {result.status}: {result.summary.get('detail') or 'no detail'}", file=sys.stderr)
    elif not args.quiet:
        print(f"{run_dir}: resumed, {result.status} after {len(result.rounds)} rounds")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
