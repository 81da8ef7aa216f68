"""`cosim run | validate`: the command line. User errors print one line each and exit 2."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import SettingError, UserError
from .scenario import load_scenario


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cosim", description="Vehicular edge learning co-simulator")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run a scenario and write its run directory")
    run.add_argument("scenario")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a field, e.g. --set protocol.rounds=5 (repeatable)")
    run.add_argument("--out", help="run directory (default: runs/<name>-seed<seed>)")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary table")
    val = sub.add_parser("validate", help="check scenario files; print every error")
    val.add_argument("scenarios", nargs="+")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "validate":
            return _validate(args)
        return _run(args)
    except UserError as err:
        print(str(err), file=sys.stderr)
        return 2


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


def _run(args) -> int:
    from .progress import RunProgress
    from .run import run_scenario

    sc, base_dir = load_scenario(args.scenario, args.overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / f"{sc.name}-seed{sc.seed}"
    try:
        with RunProgress(sc.protocol.rounds, sc.duration_s, quiet=args.quiet) as progress:
            result = run_scenario(sc, base_dir, run_dir, on_round=progress.update)
    except SettingError as err:
        raise err.with_source(args.scenario) from None
    if not args.quiet:
        progress.summary(result)
    return 0 if result.status in ("completed", "duration-reached") else 1


if __name__ == "__main__":
    sys.exit(main())
