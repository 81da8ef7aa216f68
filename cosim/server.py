"""The edge server as a shared resource: `gpu_slots` jobs at once, the rest wait in arrival order.

Each job holds one slot (the lowest free index) for flops / flops_per_s seconds and is recorded as a
'server.compute' span on actor 'server.gpu<slot>' whose payload names the vehicle the work is for.
The number of jobs waiting for a slot is the counter 'queue_len' on actor 'server', recorded when it
changes. Simultaneous arrivals are served in SimPy's insertion order, hence deterministically.
"""
from __future__ import annotations

from typing import Callable, Generator, Optional

import simpy

from .compute import ServerModel
from .trace import Trace


class EdgeServer:
    """A simpy.Resource with one unit per GPU slot, plus the trace records of its queue."""

    def __init__(self, env: simpy.Environment, trace: Trace, model: ServerModel):
        self.env, self.trace, self.model = env, trace, model
        self.resource = simpy.Resource(env, capacity=model.gpu_slots)
        self._free = list(range(model.gpu_slots))
        self._queued = 0

    def _queue_changed(self, delta: int) -> None:
        self._queued += delta
        if self.trace.wants_counters:
            self.trace.counter(self.env.now, "server", "queue_len", self._queued)

    def compute(self, round_: int, owner: str, flops: float, work: Optional[Callable[[], object]] = None,
                kind: str = "server.compute", seconds: Optional[float] = None) -> Generator:
        """Queue for a slot, run `work()` (the real PyTorch step) when the slot is granted, hold it for the
        simulated time (flops at the slot's throughput, or `seconds` when given); returns (ok, work's result).
        An interrupt while queued or running gives
        (False, None) and a 'dropped' span (when it had started) with the interrupt's cause.
        """
        req = self.resource.request()
        waiting = not req.triggered
        if waiting:
            self._queue_changed(+1)
        try:
            yield req
        except simpy.Interrupt:
            if waiting:
                self._queue_changed(-1)
            if req.triggered:            # granted in the same instant, before this process resumed
                self.resource.release(req)
            else:
                req.cancel()
            return False, None
        if waiting:
            self._queue_changed(-1)
        slot = min(self._free)
        self._free.remove(slot)
        t0 = self.env.now
        status, cause, value = "ok", "", None
        try:
            value = work() if work is not None else None
            yield self.env.timeout(self.model.time_s(flops) if seconds is None else seconds)
        except simpy.Interrupt as intr:
            status, cause, value = "dropped", str(intr.cause or "interrupted"), None
        finally:
            self._free.append(slot)
            self.resource.release(req)
        self.trace.span(t0, self.env.now, round_, f"server.gpu{slot}", kind, owner, status=status, cause=cause)
        return status == "ok", value
