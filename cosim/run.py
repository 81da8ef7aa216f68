"""Run a scenario end to end and write its run directory."""
from __future__ import annotations

import contextlib
import gc
import json
import platform
import shutil
from importlib import metadata
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from mobility.base import MobilityError, MobilitySource
from mobility.errors import MobilityInputError

from . import __version__, checkpoint, registry
from .build import build_radio, build_rsus, build_source
from .compute import ServerModel, VehicleDevices
from .decisions import prediction_gap, write_decisions
from .dwell import DWELL_FIELDS, DwellBook, record_tracks
from .errors import UserError, field_error
from .fingerprint import fingerprint
from .optimizers.api import Decision, snapshot_to_json
from .positions import RSU_FIELDS, PositionLog, rsu_rows
from .protocols.common import RoundProtocol
from .rng import RngStreams
from .rundir import Staging, signals_deferred, staged, write_error
from .scenario import Scenario, to_dict
from .sim import Simulation
from .task import LearningTask, build_task
from .trace import Trace
from .trace.export import drop_chunks, strict_dumps, write_chrome_trace, write_csv, write_parquet, write_rows_csv
from .world import World


@dataclass
class RunResult:
    """A finished run: its directory, status, rounds (as in rounds.csv, plus who trained and was averaged),
    summary.json; and the live objects (the task holds the final global model, the protocol its state)."""

    run_dir: Path
    status: str
    rounds: list[dict]
    summary: dict
    task: Optional[LearningTask] = None
    protocol: Optional[RoundProtocol] = None


def _versions() -> dict:
    import numpy
    import simpy

    try:
        sumo = metadata.version("eclipse-sumo")
    except metadata.PackageNotFoundError:
        sumo = None
    return {"cosim": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "simpy": simpy.__version__, "torch": torch.__version__, "sumo": sumo}


def run_scenario(sc: Scenario, run_dir: Path, on_round: Optional[Callable[[dict, float], None]] = None,
                 source: Optional[MobilitySource] = None, overrides: Sequence[str] = (), workers: int = 1,
                 resume: Optional[dict] = None) -> RunResult:
    """Build the World, run the protocol on the SimPy clock, write the run directory (also after a failure).

    The directory appears whole or not at all (cosim.rundir): the run writes a hidden sibling, renamed into
    place at the end; an older run there is replaced only then. `source` replaces the scenario's mobility
    source (for embedding, or fault injection in tests); `overrides` (the --set strings) go into the manifest;
    `workers` > 1 trains FedAvg's vehicles of a round in that many processes (cosim.trainpool; same bytes).
    With `output.checkpoint_every_rounds`, checkpoints go to a hidden sibling (cosim.checkpoint); `resume`
    (a loaded checkpoint, see resume_run) continues from one.
    """
    with staged(Path(run_dir)) as stage, _heap_frozen() as freeze_more:
        return _run_staged(sc, stage, on_round, source, list(overrides), workers, resume, freeze_more)


@contextlib.contextmanager
def _heap_frozen():
    """Python's cyclic collector, frozen out of what exists before the run (torch's and the other imports'
    objects): a full collection would scan them all, ~0.25 s each on a heap with torch, several times a run;
    the run's own objects are collected as usual. Yields `freeze_more()`, which takes in the set-up once
    built. Thawed after, so nothing stays uncollectable; forked workers share the frozen pages (the recipe of
    Python's gc.freeze docs). A caller that froze the heap itself is left as it is: nothing more is frozen."""
    own = gc.get_freeze_count() == 0
    if own:
        gc.freeze()
    try:
        yield gc.freeze if own else (lambda: None)
    finally:
        if own:
            gc.unfreeze()


def resume_run(run_dir: Path, on_round=None, workers: int = 1, expect: Optional[dict] = None) -> RunResult:
    """Continue the run of `run_dir` from its last checkpoint: the scenario, overrides and PyTorch threads it
    was started with; its input files must still hash the same (and its scenario be `expect`, when given).
    One line (UserError) when it cannot."""
    from .scenario import validate_tree

    where = "cosim run --resume"
    ckpt = checkpoint.load(run_dir, where)
    meta = ckpt["meta"]
    if meta["versions"]["cosim"] != __version__:
        raise UserError(field_error(where, "RUN_DIR", str(run_dir),
                                    f"a checkpoint of cosim {__version__} (it was written by {meta['versions']['cosim']})"))
    if expect is not None and meta["scenario"] != expect:
        raise UserError(field_error(where, "RUN_DIR", str(run_dir), "a checkpoint of this scenario"))
    manifest = Path(run_dir) / "manifest.json"
    if manifest.is_file():              # the run was written (interrupted): the checkpoint must be of that run
        try:
            written = json.loads(manifest.read_text())
        except ValueError:
            written = {}
        if written.get("scenario") != meta["scenario"] or written.get("overrides") != meta["overrides"]:
            raise UserError(field_error(where, "RUN_DIR", str(run_dir), "a checkpoint of the run in it (its manifest "
                                        "names another scenario or other overrides)"))
    sc = validate_tree(meta["scenario"], f"{run_dir} (checkpoint)", base_dir=Path(meta["base_dir"]))
    inputs = fingerprint(sc)
    changed = [k for k, h in inputs.items() if meta["inputs"].get(k) != h]
    if changed or set(meta["inputs"]) != set(inputs):
        raise UserError(field_error(where, "RUN_DIR", str(run_dir), "the input files the run started with (changed: "
                                    + (", ".join(changed) or "the set of files") + ")"))
    threads = torch.get_num_threads()
    torch.set_num_threads(meta["torch_threads"])        # results depend on it: the run's own count
    try:
        return run_scenario(sc, run_dir, on_round, overrides=meta["overrides"], workers=workers, resume=ckpt)
    finally:
        torch.set_num_threads(threads)


def _run_staged(sc: Scenario, stage: Staging, on_round, source, overrides: list[str], workers: int = 1,
                resume: Optional[dict] = None, freeze_more: Callable[[], None] = lambda: None) -> RunResult:
    inputs = fingerprint(sc)            # before the run: what it read, not what a file became meanwhile
    streams = RngStreams(sc.seed)
    trace = Trace(sc.output.trace_level)
    trace.spill(stage.path)             # a long run's instants and counters go to disk as they come
    rsus, radio = build_rsus(sc), build_radio(sc, streams)      # first: they check settings against the net
    tracks = None
    if sc.protocol.dwell_predictor == "oracle":   # the future, from a pre-run of an identical source
        tracks = record_tracks(build_source(sc, RngStreams(sc.seed)), sc.duration_s)
    source = source if source is not None else build_source(sc, streams, stage.path / "sumo")
    ckpt_dir = checkpoint.checkpoint_dir(stage.run_dir)
    try:                                # the source is live from here: closed if the set-up fails
        if hasattr(source, "launch"):       # SUMO in its worker loads and warms up while the task is built
            source.launch()
        task = build_task(sc.learning, streams, sc.base_dir, getattr(sc.protocol, "server_data_fraction", 0.0))
        devices = VehicleDevices(sc.devices.vehicle, streams)    # each vehicle's CPU or GPU
        server = ServerModel(sc.devices.server.flops_per_s, sc.devices.server.gpu_slots)

        def world_factory(env, tr):
            return World(env, rsus, radio, tr, sc.learning.num_clients, sc.rsus.hysteresis_m, sc.mobility.step_s,
                         sc.rsus.association, sc.rsus.hysteresis_db)

        sim = Simulation(streams, source, world_factory, trace, sc.channel.mtu_bytes, sc.channel.transfer_mode,
                         devices, sc.duration_s, sc.rsus.on_handover, sc.rsus.handover_delay_s, server)
        dwell = DwellBook(sim.world, sc.protocol.dwell_predictor, route_fn=getattr(source, "route_dwell_s", None),
                          tracks=tracks, definition=sc.protocol.dwell_definition,
                          plan_fn=getattr(source, "route_plan", None), duration_s=sc.duration_s)
        sim.tick_hooks.append(dwell.tick)
        sim.positions = PositionLog(sim.world) if sc.output.positions else None
        protocol_class = registry.scheme(sc.protocol.scheme).protocol
        proto = protocol_class(sim, task, sc, dwell, on_round=(lambda row: on_round(row, sim.env.now)) if on_round else None)
        freeze_more()                   # the set-up's objects live as long as the run: out of the collector's way
        if workers > 1 and hasattr(proto, "train_pool"):
            from .trainpool import TrainPool

            proto.train_pool = TrainPool(sc.learning, sc.seed, sc.base_dir,
                                         getattr(sc.protocol, "server_data_fraction", 0.0), workers, task)
        if resume is not None:
            try:
                checkpoint.restore(resume, sim, proto, dwell, task, streams)
            except MobilityError as exc:
                raise UserError(f"cosim run --resume: the mobility source could not be brought back: {exc}") from None
            checkpoint.copy_chunks(resume, ckpt_dir, trace)
            sim.resumed_from_round = resume["next_round"]
    except BaseException:
        source.close()
        raise
    save = partial(_save, stage, sc, sim, proto, dwell, overrides, inputs)
    if sc.output.checkpoint_every_rounds:
        meta = {"scenario": to_dict(sc), "base_dir": str(sc.base_dir), "overrides": overrides, "versions": _versions(),
                "inputs": inputs, "torch_threads": torch.get_num_threads()}

        saved = [resume["next_round"] if resume is not None else 0]

        def at_boundary(r: int, t0: float) -> None:
            """Every K rounds, at the first quiet boundary (nothing in flight) from there."""
            if r - saved[0] >= sc.output.checkpoint_every_rounds and checkpoint.quiet(sim) is None:
                with signals_deferred():
                    checkpoint.save(ckpt_dir, sim, proto, dwell, task, streams, r, t0, meta)
                saved[0] = r

        proto.at_boundary = at_boundary
    try:
        rounds = proto.process(None if resume is None else (resume["next_round"], resume["t0_s"]))
        sim.run(_then_realize(rounds, sim, dwell) if sc.output.realize_dwells else rounds)
    except (UserError, MobilityInputError) as exc:   # the user's input, found as SUMO loads it (or later)
        if sim.env.now > 0 or sim.trace.spans or proto.rounds:  # something ran: keep it; else no run dir
            sim.status, sim.failure = "input-error", str(exc)
            save()
        raise
    except KeyboardInterrupt as exc:   # Ctrl-C or SIGTERM: keep what was recorded (open spans are not in it)
        sim.status, sim.failure = "interrupted", f"interrupted at t={sim.env.now:g} s" + (f" ({exc})" if str(exc) else "")
        save()
        raise
    except Exception as exc:            # a bug: keep what was recorded, say so, then let it surface
        sim.status, sim.failure = "internal-error", f"{type(exc).__name__}: {exc}"
        save()
        raise
    finally:
        source.close()
        if getattr(proto, "train_pool", None) is not None:
            proto.train_pool.close()
    if sim.status == "duration-reached" and not proto.rounds and not sim.failure:
        covered = len({i.actor for i in sim.trace.rows("instants") if i.kind == "coverage.enter"})
        sim.failure = (f"no round completed in {sc.duration_s:g} s: {sim.world.appeared} vehicles appeared, "
                       f"{covered} ever in an RSU's coverage")
    result = save()
    result.task = task
    if result.status in ("completed", "duration-reached"):
        shutil.rmtree(ckpt_dir, ignore_errors=True)        # done: nothing to resume
    return result


def _save(stage: Staging, sc: Scenario, sim: Simulation, proto: RoundProtocol, dwell: DwellBook,
          overrides: list[str], inputs: dict[str, str]) -> RunResult:
    """Write the run into the staging folder and rename it into place, with SIGINT and SIGTERM held; a
    signal that came meanwhile is raised after, as KeyboardInterrupt. A failed write (disk full) is one
    line, and nothing is replaced."""
    with signals_deferred() as caught:
        try:
            result = write_run(stage.path, sc, sim, proto, dwell, overrides, inputs)
            stage.commit()
        except OSError as exc:
            raise write_error(stage.run_dir, exc) from None
    result.run_dir = stage.run_dir
    if caught and sim.status != "interrupted":
        raise KeyboardInterrupt("signal during writing; the run was written whole")
    return result


def _then_realize(rounds, sim: Simulation, dwell: DwellBook):
    """The protocol's rounds, then mobility ticks until no dwell prediction is open, within duration_s."""
    yield from rounds
    env = sim.env
    while dwell.pending and env.now + sim.world.step_s < sim.duration_s:
        yield env.timeout(sim.world.step_s)


def write_run(run_dir: Path, sc: Scenario, sim: Simulation, proto: RoundProtocol, dwell: DwellBook,
              overrides: Sequence[str] = (), inputs: Optional[dict[str, str]] = None) -> RunResult:
    """manifest.json, spans/instants/counters.parquet, rounds.csv, decisions.parquet, dwell.csv, trace.json,
    summary.json; timings.json (wall-clock solve times and round set-up phases: they differ from run to run,
    so nothing else holds them); snapshots/ when output.snapshots is on."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rounds = proto.rounds
    trace = sim.trace
    own = proto.outputs() if rounds else {}
    # PyTorch's float reductions depend on its thread count: identical outputs need the same count
    manifest = {"scenario": to_dict(sc), "seed": sc.seed, "versions": _versions(), "overrides": list(overrides),
                **({"resumed_from_round": sim.resumed_from_round} if sim.resumed_from_round is not None else {}),
                "inputs": inputs if inputs is not None else fingerprint(sc), "torch_threads": torch.get_num_threads(),
                "files": ["spans.parquet", "instants.parquet", "counters.parquet", "rounds.csv",
                          "decisions.parquet", "dwell.csv", "rsus.csv", "trace.json", "summary.json", "timings.json",
                          *own]}
    if sim.positions is not None:
        manifest["files"].append(sim.positions.write(run_dir / "positions.parquet").name)
    for name, text in own.items():
        (run_dir / name).write_text(text)
    write_parquet(trace, run_dir)
    if sc.output.csv:
        write_csv(trace, run_dir)
    fields = proto.csv_fields
    write_rows_csv(run_dir / "rounds.csv", fields, ([row.get(f, "") for f in fields] for row in rounds))
    write_decisions(run_dir / "decisions.parquet", proto.decision_rows, _decision_class(proto))
    (run_dir / "timings.json").write_text(strict_dumps(
        {"optimizer": proto.optimizer.name, "solves": proto.solve_ms,
         "total_ms": sum(t["ms"] for t in proto.solve_ms), "round_phases": proto.phase_ms}, indent=1) + "\n")
    if proto.snapshots:
        (run_dir / "snapshots").mkdir(exist_ok=True)
        for label, snap in proto.snapshots:
            (run_dir / "snapshots" / f"{label}.json").write_text(snapshot_to_json(snap) + "\n")
    dwell.censor(sim.env.now)
    write_rows_csv(run_dir / "dwell.csv", DWELL_FIELDS, dwell.rows)
    write_rows_csv(run_dir / "rsus.csv", RSU_FIELDS, rsu_rows(sim.world.rsus))
    write_chrome_trace(trace, run_dir / "trace.json")
    drop_chunks(trace)
    last = rounds[-1] if rounds else {}
    summary = {
        "status": sim.status, "detail": sim.failure, "rounds_completed": len(rounds),
        "sim_time_s": float(sim.env.now), "final_accuracy": last.get("accuracy"), "final_loss": last.get("loss"),
        "total_energy_j": float(sum(r["energy_j"] for r in rounds)),
        "total_bytes_up": int(sum(r["bytes_up"] for r in rounds)),
        "spans": trace.count("spans"), "instants": trace.count("instants"), "counters": trace.count("counters"),
        "prediction": prediction_gap(proto.decision_rows),
    }
    (run_dir / "summary.json").write_text(strict_dumps(summary, indent=2, sort_keys=True) + "\n")
    (run_dir / "manifest.json").write_text(strict_dumps(manifest, indent=2, sort_keys=True) + "\n")     # last: it marks a run directory
    return RunResult(run_dir, sim.status, rounds, summary, protocol=proto)


def _decision_class(proto: RoundProtocol) -> type:
    """The class of the run's decisions (a scheme's subclass of Decision, or Decision)."""
    if proto.plan is not None and proto.plan.decisions:
        return type(next(iter(proto.plan.decisions.values())))
    return Decision
