"""Where a study's runs execute (`--executor`): `serial` here one after another, `pool` (the default) in
`--jobs` local worker processes, or `ray`: each run one Ray task with an explicit CPU (and optional GPU)
request and a fixed PyTorch thread count, in a fresh process (nothing carried from run to run: on Linux a
child forked for that run from a Ray worker that imported torch and cosim once, elsewhere a new worker),
on a local Ray instance or an existing cluster (`--address`). Ray is never used inside a run.

An executor only runs; sweep.execute decides which runs (resume) and reads their metrics. A run's result
comes back as a row: {} when its run directory holds it, else its status and why; a failed run also
brings its traceback, which the driver writes beside the run directory (`NAME.traceback.txt`).
"""
from __future__ import annotations

import io
import os
import secrets
import sys
import tarfile
import tempfile
import traceback
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from mobility.errors import MobilityInputError

from .errors import UserError, field_error

if TYPE_CHECKING:
    from .sweep import SweepRun

EXECUTORS = ("serial", "pool", "ray")
Finished = Callable[["SweepRun", dict], None]
_MARKER = ".cosim-shared-fs"      # the driver's token in the study folder: a worker that reads it shares the disk
_CAN_FORK = sys.platform.startswith("linux")      # a run forked from a warm Ray worker (see RayExecutor)


def run_one(sc, run_dir: Path, overrides: list[str] = (), resume: bool = False) -> dict:
    """One run; {} when it wrote its run directory (the caller reads its metrics there), else a row with the
    status (input-error, internal-error) and why: a crash must not stop the others. An exception's
    traceback comes back too ("traceback"). With `resume`, a run that left a checkpoint of this very
    scenario goes on from it (cosim.checkpoint: the same bytes as running it again, sooner)."""
    from . import checkpoint
    from .run import resume_run, run_scenario
    from .scenario import to_dict

    try:
        if resume and checkpoint.exists(run_dir):
            try:
                resume_run(run_dir, expect=to_dict(sc))
                return {}
            except UserError:           # another scenario's, other inputs: run it afresh
                pass
        run_scenario(sc, run_dir, overrides=overrides)
    except Exception as exc:            # noqa: BLE001 - one failed run must not stop the study
        row = {"traceback": traceback.format_exc()}
        if not (run_dir / "summary.json").is_file():
            bad_input = isinstance(exc, (UserError, MobilityInputError))
            row.update(status="input-error" if bad_input else "internal-error", detail=str(exc))
        return row
    return {}


def _set_threads(threads: Optional[int]) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _run_loaded(index: int, scenario: str, overrides: list[str], run_dir: str,
                resume: bool = False) -> tuple[int, dict]:
    """A worker process's run: the scenario is loaded again there (validated already by the driver)."""
    from .scenario import load_scenario

    return index, run_one(load_scenario(scenario, overrides), Path(run_dir), overrides, resume)


def _pool_task(task: tuple[int, str, list[str], str, bool]) -> tuple[int, dict]:
    return _run_loaded(*task)


class SerialExecutor:
    """One run after another, in this process."""

    def default_threads(self) -> Optional[int]:
        """PyTorch threads per run when the caller names none: this process's own (None: leave them)."""
        return None

    def run(self, todo: list["SweepRun"], scenario: str, base: list[str], threads: Optional[int],
            finished: Finished, resume: bool = False) -> None:
        for r in todo:
            finished(r, run_one(r.scenario, r.run_dir, base + list(r.overrides), resume))


class PoolExecutor:
    """`jobs` spawned local processes (libsumo allows one SUMO per process); one job runs here, serially."""

    def __init__(self, jobs: int = 1):
        self.jobs = jobs

    def default_threads(self) -> Optional[int]:
        """The cores shared out among the jobs (one job: this process's own)."""
        return max(1, (os.cpu_count() or 1) // self.jobs) if self.jobs > 1 else None

    def run(self, todo, scenario, base, threads, finished, resume: bool = False) -> None:
        if self.jobs <= 1:
            return SerialExecutor().run(todo, scenario, base, threads, finished, resume)
        by_index = {r.index: r for r in todo}
        tasks = [(r.index, scenario, base + list(r.overrides), str(r.run_dir), resume) for r in todo]
        pool = get_context("spawn").Pool(self.jobs, initializer=_set_threads, initargs=(threads,))
        try:
            for index, row in pool.imap_unordered(_pool_task, tasks):
                finished(by_index[index], row)
        except BaseException:           # Ctrl-C or any failure here: the workers go too
            pool.terminate()
            raise
        finally:
            pool.close()
            pool.join()


def _ray_run(index: int, scenario: str, overrides: list[str], run_dir: str, threads: int,
             marker: str, token: str, resume: bool = False) -> tuple[int, dict, Optional[bytes]]:
    """A run for Ray: written in place when this process sees the driver's disk (its token there), else
    written locally and sent back as a tar archive (uncompressed: tables are compressed already)."""
    _set_threads(threads)
    try:
        shared = Path(marker).read_text() == token
    except OSError:
        shared = False
    if shared:          # a checkpoint of an interrupted run is where the driver sees it, too
        return (*_run_loaded(index, scenario, overrides, run_dir, resume), None)
    with tempfile.TemporaryDirectory(prefix="cosim_ray_") as tmp:
        local = Path(tmp) / Path(run_dir).name
        _, row = _run_loaded(index, scenario, overrides, str(local))
        if not local.is_dir():
            return index, row, None
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(local, arcname=".")
        return index, row, buf.getvalue()


def _warm() -> None:
    """What every run imports (seconds in a new interpreter), loaded once in a Ray worker, before forking."""
    import sklearn.datasets  # noqa: F401 - the digits loader
    import torch._dynamo  # noqa: F401 - imported at the first FLOP count otherwise (1.5 s)

    from . import run  # noqa: F401


def _forked(fn: Callable, *args):
    """fn(*args) in a forked child that exits after it (a fresh process, its memory gone with it), the result
    back through a pipe; the child is killed if this process dies (a cancelled Ray task)."""
    import ctypes
    import pickle
    import signal

    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:                            # the child: never returns
        code = 0
        try:
            os.close(read_fd)
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)          # PR_SET_PDEATHSIG
            if os.getppid() != parent:
                os._exit(1)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                out = ("ok", fn(*args))
            except BaseException as exc:    # noqa: BLE001 - sent back as the run's failure
                out = ("err", f"{type(exc).__name__}: {exc}", traceback.format_exc())
            with os.fdopen(write_fd, "wb") as fh:
                pickle.dump(out, fh, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:               # noqa: BLE001 - a child must never return into Ray
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"the run's process ended without a result (exit status {os.waitstatus_to_exitcode(status)})")
    out = pickle.loads(data)
    if out[0] == "err":
        raise RuntimeError(f"{out[1]}\n{out[2]}")
    return out[1]


def _ray_task(index: int, scenario: str, overrides: list[str], run_dir: str, threads: int,
              marker: str, token: str, fresh: bool, resume: bool = False) -> tuple[int, dict, Optional[bytes]]:
    """A run in a Ray worker: with `fresh` (Linux), in a process forked from the warm worker for this run only."""
    args = (index, scenario, overrides, run_dir, threads, marker, token, resume)
    if not (fresh and _CAN_FORK):
        return _ray_run(*args)
    _warm()
    return _forked(_ray_run, *args)


def _unpack(blob: bytes, run_dir: Path) -> None:
    """A run directory sent back by a worker, written here whole (staged, then renamed into place)."""
    from .rundir import staged

    with staged(run_dir, "cosim sweep") as stage:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
            tar.extractall(stage.path, filter="data")
        stage.commit()


class RayExecutor:
    """Each run a Ray task in a fresh process, `cpus` (and `gpus`) requested per run."""

    def __init__(self, address: Optional[str] = None, cpus: float = 1.0, gpus: float = 0.0, where: str = "cosim sweep",
                 ship: Optional[bool] = None, fresh: bool = True):
        """`ship=True` sends every run directory back through Ray's object store; by default only the runs of
        workers that cannot read the driver's token in the study folder (no shared disk) are sent back.
        Each run has a fresh process: on Linux forked, for that run only, from a Ray worker that imported torch
        and cosim once (a new interpreter per run costs seconds of imports); elsewhere a new Ray worker.
        `fresh=False` runs in the Ray worker itself, run after run."""
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UserError(f"{where}: --executor ray needs Ray, which is not installed: "
                            "pip install 'cosim[ray]' (or pip install ray)")
        if not cpus > 0 or gpus < 0:
            raise UserError(field_error(where, "--cpus-per-run" if not cpus > 0 else "--gpus-per-run",
                                        cpus if not cpus > 0 else gpus, "> 0 CPUs and >= 0 GPUs per run"))
        self.address, self.cpus, self.gpus, self.where, self.ship = address, cpus, gpus, where, ship
        self.fresh = fresh

    def default_threads(self) -> Optional[int]:
        """As many as the CPUs each run asks for."""
        return max(1, int(self.cpus))

    def _check_reachable(self) -> None:
        """One line at once for an address nothing answers on (Ray itself retries for minutes)."""
        import socket

        where = _host_port(self.address)
        if where is None:
            return
        try:
            socket.create_connection(where, timeout=5).close()
        except OSError as exc:
            raise UserError(field_error(self.where, "--address", self.address,
                                        f"a Ray cluster it can reach ({exc.strerror or exc})")) from None

    def run(self, todo, scenario, base, threads, finished, resume: bool = False) -> None:
        import ray

        if not todo:
            return
        started = not ray.is_initialized()
        if started and self.address:
            self._check_reachable()
        study = todo[0].run_dir.parent
        study.mkdir(parents=True, exist_ok=True)
        marker, token = study / _MARKER, secrets.token_hex(16)
        marker.write_text(token if self.ship is not True else "")        # ship=True: no worker finds it
        if started:
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, **({} if self.address else {"num_cpus": os.cpu_count()}))
            except (ConnectionError, RuntimeError, ValueError) as exc:
                marker.unlink(missing_ok=True)
                raise UserError(field_error(self.where, "--address", self.address or "(local)",
                                            f"a Ray cluster it can join ({str(exc).splitlines()[0]})")) from None
        # a fresh process per run: forked from a warm worker on Linux, else a new worker (max_calls=1)
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=0,
                          max_calls=1 if self.fresh and not _CAN_FORK else 0)(_ray_task)
        by_ref = {task.remote(r.index, os.path.abspath(scenario), base + list(r.overrides), str(r.run_dir.absolute()),
                              threads, str(marker.absolute()), token, self.fresh, resume): r for r in todo}
        try:
            pending = list(by_ref)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                r = by_ref[done[0]]
                try:
                    _, row, blob = ray.get(done[0])
                except ray.exceptions.RayError as exc:     # the worker died (killed, out of memory)
                    row, blob = {"status": "internal-error", "detail": f"Ray task failed: {str(exc).splitlines()[0]}",
                                 "traceback": str(exc)}, None
                if blob is not None:
                    _unpack(blob, r.run_dir)
                finished(r, row)
        except BaseException:           # Ctrl-C or a failure here: the runs still going are cancelled
            for ref in by_ref:
                try:
                    ray.cancel(ref, force=True)
                except Exception:       # noqa: BLE001 - finished already
                    pass
            raise
        finally:
            marker.unlink(missing_ok=True)
            if started:
                ray.shutdown()


def _host_port(address: str) -> Optional[tuple[str, int]]:
    """(host, port) of a Ray address ("HOST:PORT" or "ray://HOST:PORT"); None for "auto" and the like."""
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    return (host.strip("[]"), int(port)) if sep and host and port.isdigit() else None


def make_executor(kind: str, jobs: int = 1, address: Optional[str] = None, cpus_per_run: float = 1.0,
                  gpus_per_run: float = 0.0, where: str = "cosim sweep", fresh: bool = True):
    """The executor named `kind` (one of EXECUTORS)."""
    if kind == "serial":
        return SerialExecutor()
    if kind == "pool":
        return PoolExecutor(jobs)
    if kind == "ray":
        return RayExecutor(address, cpus_per_run, gpus_per_run, where, fresh=fresh)
    raise UserError(field_error(where, "--executor", kind, f"one of {', '.join(EXECUTORS)}"))


def write_traceback(run_dir: Path, text: Optional[str]) -> None:
    """`NAME.traceback.txt` beside a failed run's directory; an older one removed when the run succeeds."""
    path = run_dir.parent / f"{run_dir.name}.traceback.txt"
    if text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    elif path.is_file():
        path.unlink()
