"""SimPy scheduling helpers: an urgent timeout (mobility ticks run before anything else due at the same
time), an event at an exact absolute time, and whether anything will run before a given time.

This is the one module that touches SimPy's private scheduling state (`Environment._queue`, a heap of
`(time, priority, event id, event)` and `Environment._eid`, an `itertools.count`). SimPy has no public way
to schedule at an absolute time; `tests/kernel/test_kernel_clock.py` fails loudly if that layout changes,
and pyproject.toml bounds simpy's version.
"""
from __future__ import annotations

import heapq

import simpy
from simpy.events import NORMAL, URGENT, Event


class UrgentTimeout(Event):
    """Like simpy.Timeout, but scheduled with URGENT priority: at equal times it fires first."""

    def __init__(self, env: simpy.Environment, delay: float):
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, URGENT, delay)


class At(Event):
    """Like simpy.Timeout, but at the absolute time t_s: `now + (t_s - now)` is not always t_s in floating
    point (and no delay may give it), and a transfer's clock must be SimPy's bit for bit."""

    def __init__(self, env: simpy.Environment, t_s: float, urgent: bool = False):
        super().__init__(env)
        self._ok, self._value = True, None
        t_s = max(float(t_s), float(env.now))
        # Environment.schedule() adds a delay to now; this is the same heap entry with the sum exact
        heapq.heappush(env._queue, (t_s, URGENT if urgent else NORMAL, next(env._eid), self))


def start_at(env: simpy.Environment, t_s: float) -> None:
    """Set a new environment's clock to t_s (a resumed run); SimPy has no public setter."""
    if env._queue:
        raise RuntimeError("start_at() on an environment with events scheduled")
    env._now = float(t_s)


def has_private_queue(env: simpy.Environment) -> bool:
    """Whether `env` keeps SimPy's heap layout that `At` pushes onto."""
    return isinstance(getattr(env, "_queue", None), list) and hasattr(getattr(env, "_eid", None), "__next__")


def at(env: simpy.Environment, t_s: float) -> Event:
    """An event at exactly t_s (now if t_s has passed); a plain timeout on an Environment without the heap."""
    if has_private_queue(env):
        return At(env, t_s)
    return env.timeout(max(t_s - env.now, 0.0))


def quiet_until(env: simpy.Environment, t: float) -> bool:
    """No event due by time `t` will run any code: each is later, or has no callback (e.g. a departed
    vehicle's event nobody waits for; SimPy's public `peek()` would count those, and they are due at every
    tick)."""
    return all(when > t or not event.callbacks for when, _, _, event in env._queue)
