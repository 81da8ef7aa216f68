"""cosim.clock relies on SimPy's private heap; these tests fail loudly if SimPy changes it."""
from __future__ import annotations

import itertools

import simpy

from cosim.clock import At, UrgentTimeout, at, has_private_queue, quiet_until


def test_simpy_keeps_the_private_heap_layout_clock_pushes_onto():
    env = simpy.Environment()
    assert has_private_queue(env), "simpy.Environment no longer has _queue (a list) and _eid (a counter)"
    assert isinstance(env._eid, itertools.count)
    ev = env.timeout(1.5)
    entry = env._queue[0]
    assert len(entry) == 4 and entry[0] == 1.5 and entry[3] is ev, (
        "SimPy's heap entries are no longer (time, priority, event id, event): update cosim/clock.py")
    assert entry[1] == simpy.events.NORMAL


def test_at_fires_at_the_exact_absolute_time_and_in_fifo_order_with_timeouts():
    env = simpy.Environment()
    log = []
    t_exact = 0.1 + 0.2                        # 0.30000000000000004: no delay from 0.1 lands on it by addition

    def proc(name, event_factory):
        yield env.timeout(0.1)
        yield event_factory()
        log.append((name, env.now))

    env.process(proc("at", lambda: at(env, t_exact)))
    env.process(proc("timeout", lambda: env.timeout(0.2)))
    env.run()
    assert log == [("at", t_exact), ("timeout", 0.1 + 0.2)]
    assert isinstance(at(env, 0.0), At)        # in the past: now


def test_urgent_timeout_fires_before_a_normal_one_at_the_same_time():
    env = simpy.Environment()
    log = []

    def normal():
        yield env.timeout(1.0)
        log.append("normal")

    def urgent():
        yield UrgentTimeout(env, 1.0)
        log.append("urgent")

    env.process(normal())
    env.process(urgent())
    env.run()
    assert log == ["urgent", "normal"]


def test_quiet_until_ignores_due_events_nobody_waits_for():
    env = simpy.Environment()
    idle = env.event()
    idle.succeed()                              # due now, no callback: runs no code
    env.timeout(5.0)                            # due later than the horizon
    assert quiet_until(env, 1.0)
    waited = env.timeout(0.5)
    waited.callbacks.append(lambda _ev: None)   # somebody waits on it
    assert not quiet_until(env, 1.0) and quiet_until(env, 0.4)
