"""SimPy helpers: an urgent timeout, so mobility ticks run before anything else due at the same time."""
from __future__ import annotations

import simpy
from simpy.events import URGENT, Event


class UrgentTimeout(Event):
    """Like simpy.Timeout, but scheduled with URGENT priority: at equal times it fires first."""

    def __init__(self, env: simpy.Environment, delay: float):
        if delay < 0:
            raise ValueError(f"Negative delay {delay}")
        super().__init__(env)
        self._ok = True
        self._value = None
        env.schedule(self, URGENT, delay)
