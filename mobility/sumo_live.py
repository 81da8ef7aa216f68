"""SUMO driven in lock-step: libsumo in-process (default) or TraCI to a subprocess (optionally sumo-gui).

SUMO's step length is `step_s`. `start()` runs SUMO's first step, so the snapshot at t = 0 holds the
vehicles that depart at the begin time, exactly as the FCD output's first timestep does.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Sequence

import numpy as np

from .base import MobilityError, MobilitySnapshot, MobilitySource
from .errors import MobilityInputError, malformed_xml, one_line, require_xml, xml_root_tag

__all__ = ["SumoLive", "RouteState", "sumo_home", "sumo_binary"]

BACKENDS = ("libsumo", "traci")
_ROOTS = {"SUMO config": ("configuration", "sumoConfiguration"), "net file": ("net",),
          "route file": ("routes",), "additional file": ("additional", "add", "routes")}   # SUMO takes <add> too

# the one libsumo session this process may have (libsumo is a process-wide singleton)
_libsumo_session: "_Session | None" = None


def sumo_home() -> Path:
    """SUMO's install directory from the eclipse-sumo wheel (`sumo.SUMO_HOME`)."""
    import sumo

    return Path(sumo.SUMO_HOME)


def sumo_binary(name: str) -> Path:
    """Path of a SUMO executable ("sumo", "sumo-gui", "netconvert", ...) in `sumo_home()/bin`."""
    path = sumo_home() / "bin" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SUMO binary {name!r} not found (is eclipse-sumo installed?)")
    return path


def _import_libsumo():
    with contextlib.redirect_stdout(io.StringIO()):  # its import may print a pyarrow version warning
        import libsumo
    return libsumo


def _traci_constants():
    from traci import constants

    return constants


@dataclass(frozen=True)
class RouteState:
    """Where a vehicle is on its route: `edges[route_index]` is its edge (the last normal edge while it
    crosses a junction), `lane_id` its lane (maybe internal, ":..."), `lane_pos_m` the distance along it."""

    edges: tuple[str, ...]
    route_index: int
    lane_id: str
    lane_pos_m: float


def _split_list(value: str) -> list[str]:
    return [v for v in re.split(r"[,\s]+", value.strip()) if v]


def _cfg_inputs(cfg: Path) -> dict[str, list[Path]]:
    """Input files named in a .sumocfg, resolved against its folder: {"net": [...], "route": [...], ...}."""
    try:
        root = ET.parse(cfg).getroot()
    except ET.ParseError as e:
        raise MobilityInputError(cfg, f"malformed XML ({one_line(e)})") from None
    found: dict[str, list[Path]] = {"net": [], "route": [], "additional": []}
    for role, names in (("net", ("net-file", "n")), ("route", ("route-files", "r")),
                        ("additional", ("additional-files", "a"))):
        for name in names:
            for elem in root.iter(name):
                found[role] += [cfg.parent / v for v in _split_list(elem.get("value", elem.get("v", "")))]
    if not found["net"]:
        raise MobilityInputError(cfg, "no <net-file> in <input>")
    return found


# SUMO errors about what it read (a route, vehicle or type definition, an XML file): the user's input
_INPUT_ERROR = re.compile(r"route|vehicle|vType|type|flow|trip|person|edge|lane|stop|xml|file", re.IGNORECASE)


def _first_sumo_error(session: "_Session") -> str | None:
    """SUMO's first 'Error:' line (its error log, then its stderr), without the prefix; None if it wrote none."""
    for name in ("error.log", "stderr.txt"):
        p = Path(session.tmp.name) / name
        if p.is_file():
            for line in p.read_text(errors="replace").splitlines():
                if line.startswith("Error"):
                    return one_line(re.sub(r"^Error:\s*", "", line))
    return None


@contextlib.contextmanager
def _stderr_into(path: Path):
    """What this process writes to file descriptor 2 goes to `path` meanwhile: libsumo's SUMO prints its errors
    there, which would add lines to the one-line error the caller gives."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as f:
            os.dup2(f.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _exited(proc: subprocess.Popen, wait_s: float = 2.0) -> bool:
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        return False
    return True


class _Session:
    """A running SUMO: the libsumo module, or a TraCI connection and its process. close() is idempotent."""

    def __init__(self, backend: str):
        self.backend = backend
        self.api = None  # libsumo module or traci Connection: both have .vehicle, .simulation, ...
        self.proc: subprocess.Popen | None = None
        self.tmp = tempfile.TemporaryDirectory(prefix="sumo_live_")
        self.closed = False

    def close(self) -> None:
        global _libsumo_session
        if self.closed:
            return
        self.closed = True
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if _libsumo_session is self:
            _libsumo_session = None
        self.tmp.cleanup()


def _malformed(files: list[Path]) -> MobilityInputError | None:
    """The error naming the first of `files` that is not well-formed XML, or None."""
    for f in files:
        msg = malformed_xml(f)
        if msg is not None:
            return MobilityInputError(f, f"malformed XML ({msg})")
    return None


class SumoLive(MobilitySource):
    """Vehicle positions from a SUMO run stepped by the caller.

    Give either `sumocfg`, or `net_file` with optional `route_files` / `additional_files`. `seed` is
    passed as `--seed`, `begin_s` as `--begin` (t = 0 is SUMO time `begin_s`). `backend` "libsumo" runs
    SUMO in this process (one at a time per process); "traci" runs it as a subprocess, with `gui=True`
    in sumo-gui. `fcd_output` makes SUMO write its FCD trace there with `fcd_precision` decimals.
    `extra_args` are appended to SUMO's command line as given. `worker=True` (libsumo) runs libsumo in a worker
    process (mobility.sumo_worker), and `prefetch()` lets it compute the next step while this one is
    processed: the same results, SUMO's step off the caller's critical path.

    Raises MobilityFileNotFoundError / MobilityInputError (naming the file) for missing or bad inputs,
    MobilityError when SUMO fails mid-run (SUMO is then closed) or when libsumo is already in use.
    """

    def __init__(self, step_s: float, *, sumocfg: str | Path | None = None, net_file: str | Path | None = None,
                 route_files: Sequence[str | Path] = (), additional_files: Sequence[str | Path] = (), seed: int = 0,
                 backend: str = "libsumo", gui: bool = False, begin_s: float = 0.0,
                 fcd_output: str | Path | None = None, fcd_precision: int = 6, extra_args: Sequence[str] = (),
                 output_dir: str | Path | None = None, warmup_s: float = 0.0, worker: bool = False):
        if not step_s > 0 or abs(step_s * 1000 - round(step_s * 1000)) > 1e-6:
            raise ValueError(f"step_s must be a positive multiple of 0.001 s (SUMO's resolution), got {step_s}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if gui and backend != "traci":
            raise ValueError("gui=True needs backend='traci'")
        if worker and backend != "libsumo":
            raise ValueError("worker=True needs backend='libsumo' (TraCI runs SUMO in its own process already)")
        if (sumocfg is None) == (net_file is None):
            raise ValueError("give exactly one of sumocfg or net_file")
        if sumocfg is not None and (route_files or additional_files):
            raise ValueError("route_files / additional_files go with net_file; list them in the sumocfg instead")
        self.step_s = float(step_s)
        self.sumocfg = Path(sumocfg) if sumocfg is not None else None
        self.net_file = Path(net_file) if net_file is not None else None
        self.route_files = tuple(Path(p) for p in route_files)
        self.additional_files = tuple(Path(p) for p in additional_files)
        self.seed, self.backend, self.gui, self.begin_s = int(seed), backend, bool(gui), float(begin_s)
        self.fcd_output = Path(fcd_output) if fcd_output is not None else None
        self.fcd_precision = int(fcd_precision)
        self.extra_args = tuple(str(a) for a in extra_args)
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.worker = bool(worker)
        if not warmup_s >= 0:
            raise ValueError(f"warmup_s must be >= 0, got {warmup_s}")
        self.warmup_steps = int(round(warmup_s / self.step_s))     # SUMO steps run before t = 0
        self._session: _Session | None = None
        self._launched = False                   # launch() sent the start and the warm-up; start() collects
        self._finalizer: weakref.finalize | None = None
        self._k = 0
        self._last: dict = {}               # libsumo/TraCI: the subscription results of the last step
        self._last_ids: frozenset | None = None  # worker: the ids on the road in the last step (built on demand)
        self._last_ids_tuple: tuple[str, ...] = ()
        self._routes: dict[str, tuple[str, ...]] = {}
        self._errors: tuple[type[BaseException], ...] = ()
        self._files: list[Path] = []        # the checked input files (config first), for blaming one

    # ---- inputs -------------------------------------------------------------------------------------
    def _input_files(self) -> list[Path]:
        """All input files (config first), checked to exist and to have the right root element; sets
        self.net_file from a sumocfg."""
        if self.sumocfg is not None:
            cfg = require_xml(self.sumocfg, "SUMO config", _ROOTS["SUMO config"])
            found = _cfg_inputs(cfg)
            net, routes, adds = found["net"], found["route"], found["additional"]
            where = f" (named in {cfg.name})"
        else:
            cfg, net, routes, adds, where = None, [self.net_file], self.route_files, self.additional_files, ""
        by_role = (("net file", net), ("route file", routes), ("additional file", adds))
        files = [require_xml(p, role + where, _ROOTS[role]) for role, paths in by_role for p in paths]
        self.net_file = files[0]
        return ([cfg] if cfg is not None else []) + files

    def _command(self, err_log: Path) -> list[str]:
        binary = "sumo-gui" if self.gui else "sumo"
        cmd = [str(sumo_binary(binary)) if self.backend == "traci" else binary]
        if self.sumocfg is not None:
            cmd += ["-c", str(self._config_for_run())]
        else:
            cmd += ["-n", str(self.net_file)]
            if self.route_files:
                cmd += ["-r", ",".join(str(p) for p in self.route_files)]
            if self.additional_files:
                cmd += ["-a", ",".join(str(p) for p in self.additional_files)]
        cmd += ["--step-length", f"{self.step_s:.3f}", "--begin", f"{self.begin_s:.3f}", "--seed", str(self.seed),
                "--no-step-log", "--no-warnings", "--duration-log.disable", "--error-log", str(err_log)]
        if self.fcd_output is not None:
            cmd += ["--fcd-output", str(self.fcd_output), "--precision", str(self.fcd_precision)]
        if self.gui:
            cmd += ["--start", "--quit-on-end"]
        return cmd + list(self.extra_args)

    def _config_for_run(self) -> Path:
        """The .sumocfg SUMO runs: the user's, or with `output_dir`, a copy there whose input files are absolute
        paths, so that the outputs the configuration asks for (relative to it) land in output_dir, not next
        to the configuration (which may sit inside an installed package)."""
        if self.output_dir is None:
            return self.sumocfg
        root = ET.parse(self.sumocfg).getroot()
        if not any(len(out) for out in root.iter("output")):     # it writes nothing: run it as it is
            return self.sumocfg
        base = self.sumocfg.parent
        for elem in root.iter():
            value = elem.get("value")
            if value is None:
                continue
            parts = _split_list(value)
            if parts and all((base / p).is_file() for p in parts):      # an input file: made absolute
                elem.set("value", ",".join(str((base / p).resolve()) for p in parts))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        copy = self.output_dir / self.sumocfg.name
        ET.ElementTree(root).write(copy, encoding="UTF-8", xml_declaration=True)
        return copy

    def _start_failure(self, files: list[Path], session: _Session, cause: str) -> MobilityInputError:
        """Name the file that made SUMO fail to start: a malformed XML file, else SUMO's first error."""
        bad = _malformed(files)
        if bad is not None:
            return bad
        detail = _first_sumo_error(session) or cause
        return MobilityInputError(self._blamed_file(files, detail), f"SUMO could not load it: {detail}")

    def _blamed_file(self, files: list[Path], detail: str) -> Path:
        """The input SUMO's message names, else the route file for a route error, else the first input."""
        for f in files:
            if f.name in detail:
                return f
        routes = [f for f in files if xml_root_tag(f) == "routes"]
        if routes and re.search(r"route|vehicle|vType|flow|trip|depart|stop|person|car-following", detail,
                                re.IGNORECASE):
            return routes[0]
        return files[0]

    # ---- lifecycle ----------------------------------------------------------------------------------
    def launch(self) -> None:
        """Worker mode: have the worker load SUMO and run the warm-up now, without waiting, so that the caller
        builds the rest of its run meanwhile; `start()` collects the answers (and reports any failure). Inputs
        that would fail are left alone: `start()` names them as it always does."""
        if not self.worker or self._session is not None:
            return
        try:
            files = self._input_files()
        except Exception:       # noqa: BLE001 - start() raises it, in its place
            return
        self._open_session(files)
        self._post_start()          # SUMO loads while the files are checked here
        if _malformed(files) is not None:
            self._finalizer()
            self._session = self._finalizer = None
            return
        self._launched = True

    def _post_start(self) -> None:
        """A worker process for the session, asked to load SUMO (it subscribes to departures, too) and to run
        the warm-up; start() collects both answers."""
        from .sumo_worker import RemoteApi

        session = self._session
        session.api = RemoteApi(str(Path(session.tmp.name) / "stderr.txt"))
        session.api.post(("start", self._cmd))
        session.api.post(("warmup", self.warmup_steps))

    def _open_session(self, files: list[Path]) -> None:
        self._files = files
        session = _Session(self.backend)
        self._cmd = self._command(Path(session.tmp.name) / "error.log")
        self._session = session
        self._finalizer = weakref.finalize(self, session.close)

    def start(self) -> MobilitySnapshot:
        global _libsumo_session
        launched, self._launched = self._launched, False
        if self._session is not None and not launched:
            raise MobilityError("SumoLive.start() called twice; make a new SumoLive to run again")
        if not launched:
            self._open_session(self._input_files())
        files, session, cmd = self._files, self._session, self._cmd
        try:
            if self.worker:
                from .sumo_worker import FatalTraCIError, TraCIException, WorkerDied

                self._errors = (TraCIException, FatalTraCIError, WorkerDied)
                if not launched:
                    bad = _malformed(files)     # as in-process: a malformed file is named before SUMO reads it
                    if bad is not None:
                        raise bad
                    self._post_start()
                try:
                    session.api.collect()
                except self._errors as e:
                    raise self._start_failure(files, session, one_line(e)) from None
            elif self.backend == "libsumo":
                libsumo = _import_libsumo()
                if _libsumo_session is not None or libsumo.simulation.isLoaded():
                    raise MobilityError("libsumo is already running in this process (one per process): close "
                                        "the other SumoLive first, or use backend='traci'")
                self._errors = (libsumo.TraCIException, libsumo.FatalTraCIError)
                bad = _malformed(files)     # libsumo loading malformed XML can crash the whole process
                if bad is not None:
                    raise bad
                _libsumo_session, session.api = session, libsumo  # so that close() also cleans up a failed load
                try:
                    with _stderr_into(Path(session.tmp.name) / "stderr.txt"):   # SUMO prints errors there
                        libsumo.start(cmd)
                except self._errors as e:
                    raise self._start_failure(files, session, one_line(e)) from None
            else:
                self._start_traci(cmd, files, session)
            try:
                if not self.worker:
                    session.api.simulation.subscribe([_traci_constants().VAR_DEPARTED_VEHICLES_IDS])
                if self.worker:                         # the same steps, without sending each one back
                    session.api.collect()
                else:
                    for _ in range(self.warmup_steps):  # traffic builds up; these steps are not ticks
                        self._advance()
                return self._advance()
            except self._errors as e:
                if session.proc is not None and _exited(session.proc):  # SUMO died while loading
                    raise self._start_failure(files, session, one_line(e)) from None
                raise self._fail("in its first step", e) from None    # a route it loads in warmup_s, too
        except BaseException:
            self.close()
            raise

    def _start_traci(self, cmd: list[str], files: list[Path], session: _Session) -> None:
        import sumolib
        import traci

        if self.gui and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise MobilityInputError(cmd[0], "sumo-gui needs a display and DISPLAY is not set (use gui: false)")

        self._errors = (traci.exceptions.FatalTraCIError, traci.exceptions.TraCIException, OSError)
        port = sumolib.miscutils.getFreeSocketPort()
        env = dict(os.environ, SUMO_HOME=str(sumo_home()))
        with open(Path(session.tmp.name) / "stderr.txt", "wb") as err:
            session.proc = subprocess.Popen(cmd + ["--remote-port", str(port)], stdout=subprocess.DEVNULL,
                                            stderr=err, env=env)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # traci prints its connection retries
                session.api = traci.connect(port=port, proc=session.proc, numRetries=400, waitBetweenRetries=0.05)
        except self._errors as e:
            if _exited(session.proc):
                raise self._start_failure(files, session, one_line(e)) from None
            raise MobilityError(f"could not connect to SUMO on port {port}: {one_line(e)}") from None

    def step(self) -> MobilitySnapshot:
        if self._session is None or self._session.closed:
            raise MobilityError("SumoLive is not running (start() not called, or closed)")
        self._k += 1
        try:
            return self._advance()
        except self._errors as e:
            raise self._fail("in simulationStep", e) from None

    def prefetch(self) -> None:
        """Worker mode: start computing the next step now (its snapshot is what the next step() returns). The
        caller promises to ask SUMO nothing before that step(); a query meanwhile raises. Else a no-op."""
        if self.worker and self.running:
            try:
                self._session.api.prefetch()
            except self._errors as e:
                raise self._fail("in simulationStep", e) from None

    def close(self) -> None:
        """Stop SUMO (libsumo: release it for the next run; traci: end the subprocess). Idempotent."""
        if self._finalizer is not None:
            self._finalizer()

    @property
    def running(self) -> bool:
        return self._session is not None and not self._session.closed

    @property
    def pid(self) -> int | None:
        """The SUMO subprocess id (traci backend), else None."""
        s = self._session
        return s.proc.pid if s is not None and s.proc is not None else None

    @property
    def t_s(self) -> float:
        return self._k * self.step_s

    # ---- stepping -----------------------------------------------------------------------------------
    def _fail(self, what: str, e: BaseException) -> MobilityError | MobilityInputError:
        """Close SUMO and say why it failed: MobilityInputError naming the input file when SUMO stopped on a
        bad input it reads as it goes (routes are loaded ahead in steps, so an unknown edge of a late vehicle
        stops it mid-run), else MobilityError (SUMO died or was killed, a query failed)."""
        session = self._session
        fatal = type(e).__name__ in ("FatalTraCIError", "WorkerDied") or isinstance(e, OSError)   # SUMO ended, not one query
        stopped = fatal and session is not None and not session.closed and (
            session.proc is None or _exited(session.proc))       # its logs are complete once it has exited
        detail = None
        if stopped:         # libsumo's fatal error is SUMO's message itself (its error log may not be flushed yet)
            detail = _first_sumo_error(session) or (one_line(e) if session.proc is None else None)
        self.close()
        if detail is not None and (any(f.name in detail for f in self._files) or _INPUT_ERROR.search(detail)):
            return MobilityInputError(self._blamed_file(self._files, detail),
                                      f"SUMO stopped on it at t={self.t_s:g} s: {detail}")
        return MobilityError(f"SUMO ({self.backend}) failed {what} at t={self.t_s:g} s: "
                             f"{type(e).__name__}: {one_line(detail or e)}")

    def _advance(self) -> MobilitySnapshot:
        """One SUMO step; the new state is time t_s (SUMO's clock then reads t_s + step_s). SUMO's errors
        pass through.

        With libsumo only positions are subscribed: they are what every tick needs, and each subscribed
        variable costs SUMO and the Python conversion time for every vehicle every step. Speed and heading
        are read on demand, while this step is current (SUMO has not moved on, so they are its values).
        Over TraCI a query is a socket round trip, so speed and angle are subscribed as well.
        """
        api = self._session.api
        tc = _traci_constants()
        if self.worker:
            return self._advance_remote(api, tc)
        api.simulationStep()
        libsumo = self.backend == "libsumo"
        variables = [tc.VAR_POSITION] if libsumo else [tc.VAR_POSITION, tc.VAR_SPEED, tc.VAR_ANGLE]
        for vid in api.simulation.getSubscriptionResults()[tc.VAR_DEPARTED_VEHICLES_IDS]:
            api.vehicle.subscribe(vid, variables)
        res = api.vehicle.getAllSubscriptionResults()
        self._last = res
        if len(self._routes) > 2 * len(res) + 64:
            self._routes = {v: r for v, r in self._routes.items() if v in res}
        # libsumo returns a std::map, sorted by id bytes (= Python's str order for UTF-8); TraCI returns
        # subscription order
        ids = list(res) if libsumo else sorted(res)
        rows = res.values() if libsumo else [res[v] for v in ids]
        n = len(ids)
        xy = np.fromiter(chain.from_iterable(map(itemgetter(tc.VAR_POSITION), rows)), dtype=float,
                         count=2 * n).reshape(n, 2)
        # a vehicle off the road (teleporting) has an invalid position, as SUMO's FCD output omits it
        on_road = xy[:, 0] != tc.INVALID_DOUBLE_VALUE
        if not on_road.all():
            keep = np.flatnonzero(on_road)
            ids, xy = [ids[i] for i in keep], xy[on_road]
            if not libsumo:
                rows = [rows[i] for i in keep]
        ids = tuple(ids)
        if libsumo:
            return MobilitySnapshot(self.t_s, ids, xy, kinematics=self._kinematics_reader(ids))
        speed = np.fromiter(map(itemgetter(tc.VAR_SPEED), rows), dtype=float, count=len(ids))
        angle_deg = np.fromiter(map(itemgetter(tc.VAR_ANGLE), rows), dtype=float, count=len(ids))
        return MobilitySnapshot(self.t_s, ids, xy, speed, sumo_angle_to_heading_rad(angle_deg))

    def _advance_remote(self, api, tc) -> MobilitySnapshot:
        """`_advance` with libsumo in the worker: one round trip for the step and every position."""
        ids, xy = api.step_positions()
        on_road = xy[:, 0] != tc.INVALID_DOUBLE_VALUE
        if not on_road.all():
            keep = np.flatnonzero(on_road)
            ids, xy = tuple(ids[i] for i in keep), xy[on_road]
        self._last_ids_tuple, self._last_ids = ids, None
        if len(self._routes) > 2 * len(ids) + 64:
            present = set(ids)
            self._routes = {v: r for v, r in self._routes.items() if v in present}
        return MobilitySnapshot(self.t_s, ids, xy, kinematics=self._kinematics_reader(ids))

    def _on_road(self, vid: str) -> bool:
        """The vehicle is in the last snapshot (on the road)."""
        if self.worker:
            if self._last_ids is None:
                self._last_ids = frozenset(self._last_ids_tuple)
            return vid in self._last_ids
        r, tc = self._last.get(vid), _traci_constants()
        return r is not None and r[tc.VAR_POSITION][0] != tc.INVALID_DOUBLE_VALUE

    def _kinematics_reader(self, ids: tuple[str, ...]):
        """Reads speed and heading of snapshot rows from SUMO, valid only until the next step."""
        k, api, tc = self._k, self._session.api, _traci_constants()

        def read(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            if self._k != k or not self.running:
                raise MobilityError(f"speed and heading of the SUMO snapshot at t={k * self.step_s:g} s are read "
                                    "from SUMO and only while it is the current step")
            try:
                if self.worker:                 # one round trip for all of them
                    speed, angle_deg = api.speeds_angles([ids[i] for i in rows])
                else:
                    speed = np.array([api.vehicle.getSpeed(ids[i]) for i in rows], dtype=float)
                    angle_deg = np.array([api.vehicle.getAngle(ids[i]) for i in rows], dtype=float)
            except self._errors as e:
                raise self._fail("reading speed and angle", e) from None
            return speed, sumo_angle_to_heading_rad(angle_deg)

        return read

    # ---- routes -------------------------------------------------------------------------------------
    def route_state(self, vid: str) -> RouteState:
        """Route, edge and lane position of a vehicle in the last snapshot (KeyError if it is not there)."""
        if not self._on_road(vid):
            raise KeyError(f"vehicle {vid!r} is not in the last snapshot")
        api = self._session.api     # SUMO has not stepped since the snapshot, so these are its values
        try:
            road = api.vehicle.getRoadID(vid)
            idx, lane = api.vehicle.getRouteIndex(vid), api.vehicle.getLaneID(vid)
            lane_pos = api.vehicle.getLanePosition(vid)
            edges = self._routes.get(vid)
            if edges is None or not 0 <= idx < len(edges) or (not road.startswith(":") and edges[idx] != road):
                edges = tuple(api.vehicle.getRoute(vid))
                self._routes[vid] = edges
        except self._errors as e:
            raise self._fail(f"in route queries for {vid!r}", e) from None
        return RouteState(edges, int(idx), lane, float(lane_pos))

    def route_edges(self, vid: str) -> tuple[str, ...]:
        """Edge ids of the vehicle's current route."""
        return self.route_state(vid).edges

    def remaining_path_xy(self, vid: str) -> np.ndarray:
        """(m, 2) polyline of the rest of the vehicle's route, from its current position (see roads.py)."""
        from .roads import load_net, remaining_path_xy

        st = self.route_state(vid)
        return remaining_path_xy(load_net(self.net_file), st.edges, st.route_index, st.lane_id, st.lane_pos_m)

    def route_dwell_s(self, vid: str, rsu_xy_m: np.ndarray, radius_m: float) -> float:
        """`dwell.route_dwell_s` for a vehicle of the last snapshot along its remaining route: at its current
        speed while it moves; a stopped one (below STOPPED_MPS: at a light, in a queue) first waits until
        the next traffic light on its route turns green for it (`red_wait_s`), then drives at its lane's
        allowed speed. Finite for every vehicle with a route to drive."""
        from .dwell import route_dwell_s

        path, speed, wait_s = self.route_plan(vid)
        drive_s = route_dwell_s(path, speed, rsu_xy_m, radius_m)
        return drive_s if drive_s == 0.0 else wait_s + drive_s

    def route_plan(self, vid: str) -> tuple[np.ndarray, float, float]:
        """(remaining path (m, 2), speed [m/s], wait [s]) that the route predictor drives: the current speed
        and no wait while the vehicle moves; for a stopped one the wait for the next light's green and its
        lane's allowed speed."""
        from .dwell import STOPPED_MPS

        path = self.remaining_path_xy(vid)      # checks that the vehicle is in the last snapshot
        api = self._session.api
        try:
            speed = float(api.vehicle.getSpeed(vid))
            if speed >= STOPPED_MPS:
                return path, speed, 0.0
            if api.vehicle.isStoppedParking(vid):      # parked: nowhere to go for now
                return path, 0.0, 0.0
            wait_s = self.red_wait_s(vid)
            return path, max(float(api.vehicle.getAllowedSpeed(vid)), STOPPED_MPS), wait_s
        except self._errors as e:
            raise self._fail(f"in the route dwell of {vid!r}", e) from None

    def red_wait_s(self, vid: str) -> float:
        """Seconds until the next traffic light on the vehicle's route shows it green (0 when it does now
        or there is none), from the light's program: the rest of the current phase, then whole phases."""
        api = self._session.api
        ahead = api.vehicle.getNextTLS(vid)
        if not ahead:
            return 0.0
        tls, link, _, state = ahead[0]
        if state in "gG":
            return 0.0
        program = api.trafficlight.getProgram(tls)
        logic = next((lg for lg in api.trafficlight.getAllProgramLogics(tls)
                      if lg.programID == program), None)
        wait = float(api.trafficlight.getNextSwitch(tls)) - float(api.simulation.getTime())
        if logic is None or not logic.phases:
            return max(wait, 0.0)
        phases, cur = logic.phases, int(api.trafficlight.getPhase(tls))
        for k in range(1, len(phases) + 1):           # the phases after the current one, in order
            phase = phases[(cur + k) % len(phases)]
            if phase.state[link] in "gG":
                return max(wait, 0.0)
            wait += float(phase.duration)
        return max(wait, 0.0)                         # never green for it: one whole cycle, a bound


def sumo_angle_to_heading_rad(angle_deg: np.ndarray) -> np.ndarray:
    """SUMO's angle (degrees clockwise from north) to a heading (radians counter-clockwise from +x),
    wrapped to [-pi, pi)."""
    h = np.radians(90.0 - np.asarray(angle_deg, dtype=float))
    return (h + np.pi) % (2.0 * np.pi) - np.pi
