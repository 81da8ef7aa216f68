"""libsumo in a worker process, so that SUMO computes its next step while the co-simulator processes this
one (SumoLive with `worker=True`).

The worker owns libsumo; the caller talks to it over a pipe. `RemoteApi` mirrors the libsumo module
(`api.vehicle.getSpeed(vid)`, `api.simulation.getTime()`, ...) by forwarding each call, and `step_positions`
does a whole tick in one round trip: step, subscribe the departed vehicles to their position, return the ids
and an (n, 2) array. `prefetch()` asks for the next tick ahead of time; the caller may then send nothing but
the matching `step_positions` (or close): a query after a prefetch would see SUMO one step ahead, so it is
refused loudly instead of answered wrongly. Results are identical to libsumo in-process: the same calls, in
the same order, on the same SUMO.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
import subprocess
import sys
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace

import numpy as np


class TraCIException(Exception):
    """libsumo's TraCIException, raised again on the caller's side."""


class FatalTraCIError(Exception):
    """libsumo's FatalTraCIError (SUMO ended), raised again on the caller's side."""


class WorkerDied(Exception):
    """The worker process ended (killed, crashed) or its pipe broke."""


# ---- the worker's side -------------------------------------------------------------------------------------
def _plain(result):
    """libsumo results that are SWIG objects (traffic-light logics) as picklable namespaces."""
    try:
        pickle.dumps(result)
        return result
    except Exception:   # noqa: BLE001 - a SWIG object; only the logics are used (programID, phases' state, duration)
        return [SimpleNamespace(programID=lg.programID, type=lg.type, currentPhaseIndex=lg.currentPhaseIndex,
                                phases=[SimpleNamespace(duration=p.duration, state=p.state, minDur=p.minDur,
                                                        maxDur=p.maxDur) for p in lg.phases]) for lg in result]


def _serve(conn_in: Connection, conn_out: Connection) -> None:
    """The worker's loop: one request, one reply, until 'close' or the pipe ends."""
    with contextlib.redirect_stdout(io.StringIO()):
        import libsumo
    import traci.constants as tc

    errors = {libsumo.TraCIException: "TraCIException", libsumo.FatalTraCIError: "FatalTraCIError"}
    ahead = None            # the reply to the prefetched step
    departed = tc.VAR_DEPARTED_VEHICLES_IDS

    def step():
        libsumo.simulationStep()
        for vid in libsumo.simulation.getSubscriptionResults()[departed]:
            libsumo.vehicle.subscribe(vid, [tc.VAR_POSITION])
        res = libsumo.vehicle.getAllSubscriptionResults()
        ids = tuple(res)
        xy = np.fromiter((c for r in res.values() for c in r[tc.VAR_POSITION]), dtype=float, count=2 * len(ids))
        return ids, xy.reshape(len(ids), 2)

    def answer(fn):
        try:
            return ("ok", fn())
        except tuple(errors) as e:
            return ("err", errors[type(e)], str(e))

    while True:
        try:
            kind, *args = conn_in.recv()
        except EOFError:
            break
        if kind == "close":
            with contextlib.suppress(Exception):
                libsumo.close()
            conn_out.send(("ok", None))
            break
        if kind == "start":
            reply = answer(lambda: (libsumo.start(args[0]),
                                    libsumo.simulation.subscribe([departed]))[1])
        elif kind == "step":
            reply, ahead = (ahead, None) if ahead is not None else (answer(step), None)
        elif kind == "warmup":      # n steps (departures subscribed as in `step`), nothing sent back
            reply = answer(lambda: [step() for _ in range(args[0])] and None)
        elif kind == "kinematics":  # speed and angle of these vehicles, as arrays
            reply = answer(lambda: (np.array([libsumo.vehicle.getSpeed(v) for v in args[0]], dtype=float),
                                    np.array([libsumo.vehicle.getAngle(v) for v in args[0]], dtype=float)))
        elif kind == "prefetch":
            ahead = answer(step)
            continue                # no reply: the caller takes it with its next "step"
        else:                       # ("call", domain, method, args)
            domain, method, call_args = args
            target = libsumo if domain is None else getattr(libsumo, domain)
            reply = answer(lambda: _plain(getattr(target, method)(*call_args)))
        conn_out.send(reply)


# ---- the caller's side -------------------------------------------------------------------------------------
_LIVE: "weakref.WeakSet[RemoteApi]" = weakref.WeakSet()


def _forget_in_child() -> None:
    """A process forked from the caller (e.g. a training worker) never talks to SUMO and must not keep its pipes
    open (the worker would not see its caller end): the child's copies are closed."""
    for api in list(_LIVE):
        for conn in (api._send, api._recv):
            with contextlib.suppress(OSError):
                conn.close()
    _LIVE.clear()


os.register_at_fork(after_in_child=_forget_in_child)


class RemoteApi:
    """The libsumo module, in a worker process: `api.<domain>.<method>(*args)` and `api.<function>(*args)`
    are forwarded; errors come back as this module's TraCIException / FatalTraCIError; a dead worker is
    WorkerDied."""

    def __init__(self, stderr_path: str):
        # a fresh interpreter running this module (not multiprocessing's spawn, which would import the caller's
        # main script again); requests on its stdin, replies on its stdout, length-prefixed pickles
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen([sys.executable, "-m", "mobility.sumo_worker", stderr_path],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._send = Connection(os.dup(self._proc.stdin.fileno()), readable=False)
        self._recv = Connection(os.dup(self._proc.stdout.fileno()), writable=False)
        self._proc.stdin.close()
        self._proc.stdout.close()
        self._ahead = False
        self._posted = 0        # requests sent whose replies nobody has collected yet
        _LIVE.add(self)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def _ask(self, request: tuple):
        if self._ahead and request[0] not in ("step", "close"):
            raise RuntimeError(f"SUMO query {request[1:3]} after a prefetch: it would see the next step")
        while self._posted:             # replies to posted requests nobody collected (an error path): dropped
            with contextlib.suppress(Exception):
                self.collect()
        self.post(request)
        return self.collect()

    def post(self, request: tuple) -> None:
        """Send a request without waiting; `collect()` returns its reply (in order) or raises its error."""
        try:
            self._send.send(request)
        except (EOFError, OSError) as e:
            raise WorkerDied(f"the SUMO worker process ended ({type(e).__name__})") from None
        self._posted += 1

    def collect(self):
        """The reply to the oldest posted request."""
        self._posted -= 1
        try:
            reply = self._recv.recv()
        except (EOFError, OSError) as e:
            raise WorkerDied(f"the SUMO worker process ended ({type(e).__name__})") from None
        if reply[0] == "err":
            raise (FatalTraCIError if reply[1] == "FatalTraCIError" else TraCIException)(reply[2])
        return reply[1]

    def start(self, cmd: list[str]) -> None:
        self._ask(("start", cmd))

    def step_positions(self) -> tuple[tuple[str, ...], np.ndarray]:
        """One tick: ids in libsumo's order (sorted) and their (n, 2) positions."""
        out = self._ask(("step",))
        self._ahead = False
        return out

    def speeds_angles(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Speed [m/s] and SUMO angle [deg] of these vehicles, in one round trip."""
        return self._ask(("kinematics", list(ids)))

    def prefetch(self) -> None:
        """Let SUMO compute the next step now; only step_positions (or close) may follow."""
        if not self._ahead:
            try:
                self._send.send(("prefetch",))
            except (EOFError, OSError) as e:
                raise WorkerDied(f"the SUMO worker process ended ({type(e).__name__})") from None
            self._ahead = True

    def close(self) -> None:
        self._ahead = False
        if self._proc.poll() is None:
            with contextlib.suppress(Exception):
                self._ask(("close",))
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._send.close()
        self._recv.close()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return _Domain(self, name)


class _Domain:
    __slots__ = ("_api", "_name")

    def __init__(self, api: RemoteApi, name: str):
        self._api, self._name = api, name

    def __getattr__(self, method: str):
        api, domain = self._api, self._name
        return lambda *args: api._ask(("call", domain, method, args))

    def __call__(self, *args):          # a module-level function, e.g. api.simulationStep()
        return self._api._ask(("call", None, self._name, args))


def main() -> None:
    """`python -m mobility.sumo_worker STDERR_LOG`: serve on stdin/stdout. Anything SUMO prints goes to the log
    (fd 1 and 2), so stdout carries only the replies."""
    replies = os.dup(1)
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)    # a Ctrl-C is the caller's to handle; it closes us
    _serve(Connection(os.dup(0), writable=False), Connection(replies, readable=False))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)     # SUMO is closed and the reply sent: skip the interpreter's teardown, which the caller waits for


if __name__ == "__main__":
    main()
