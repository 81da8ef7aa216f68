"""Selection rules: which covered vehicles a round asks the optimizer to plan for.

A rule is `select(snapshot, rng, plan_for) -> Selection`; `plan_for(ids)` runs the round's optimizer
on those candidates (rules that re-plan, like `dwell_fit`, call it). Vehicles are kept in candidate
(sorted id) order. k = protocol.vehicles_per_round; only vehicles predicted to stay >= min_dwell_s count.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..registry import register_selection
from .api import Plan, RoundSnapshot


@dataclass(frozen=True)
class Selection:
    """The chosen ids, and each vehicle left out after being considered, with why."""

    chosen: list[str]
    dropped: dict[str, str] = field(default_factory=dict)


def _eligible(snap: RoundSnapshot) -> list[int]:
    min_s = snap.settings["min_dwell_s"]
    return [i for i, c in enumerate(snap.candidates) if c.dwell_s >= min_s]


def _ids(snap: RoundSnapshot, rows) -> list[str]:
    return [snap.candidates[i].id for i in rows]


@register_selection("all")
def select_all(snap: RoundSnapshot, rng: np.random.Generator, plan_for: Callable) -> Selection:
    """Every covered vehicle predicted to stay at least min_dwell_s."""
    return Selection(_ids(snap, _eligible(snap)))


@register_selection("random")
def select_random(snap: RoundSnapshot, rng: np.random.Generator, plan_for: Callable) -> Selection:
    """k of them uniformly at random (the 'selection' stream)."""
    eligible, k = _eligible(snap), snap.settings["vehicles_per_round"]
    rows = sorted(rng.choice(eligible, size=min(k, len(eligible)), replace=False).tolist()) if eligible else []
    return Selection(_ids(snap, rows))


def _longest_dwell(snap: RoundSnapshot) -> list[int]:
    dwell = [c.dwell_s for c in snap.candidates]
    ids = [c.id for c in snap.candidates]
    return sorted(sorted(_eligible(snap), key=lambda i: (-dwell[i], ids[i]))[:snap.settings["vehicles_per_round"]])


@register_selection("dwell")
def select_dwell(snap: RoundSnapshot, rng: np.random.Generator, plan_for: Callable) -> Selection:
    """The k with the longest predicted dwell."""
    return Selection(_ids(snap, _longest_dwell(snap)))


def fit_to_dwell(chosen: list[str], dwell_s: dict[str, float], plan_for: Callable[[list[str]], Plan]
                 ) -> tuple[list[str], dict[str, float]]:
    """Keep the vehicles whose predicted round latency fits in their predicted dwell (the seed papers'
    mobility-aware selection, T_n <= t_hold): plan the set; while some vehicle would not finish in time,
    drop the one that misses by the most and plan the rest again (their shares grow, latencies fall).
    Vehicles the optimizer leaves out of its plan (none of its decisions is feasible for them) are dropped
    with latency inf. Returns the kept ids and each dropped one's predicted latency when dropped."""
    dropped: dict[str, float] = {}
    while chosen:
        latency = plan_for(chosen).latency_s
        left_out = [v for v in chosen if v not in latency]        # the optimizer could not plan them
        if left_out:
            dropped.update({v: float("inf") for v in left_out})
            chosen = [v for v in chosen if v in latency]
            continue
        worst = min(chosen, key=lambda v: (dwell_s[v] - latency[v], v))
        if latency[worst] <= dwell_s[worst]:
            break
        dropped[worst] = latency[worst]
        chosen = [v for v in chosen if v != worst]
    return chosen, dropped


@register_selection("dwell_fit")
def select_dwell_fit(snap: RoundSnapshot, rng: np.random.Generator, plan_for: Callable) -> Selection:
    """Of the k longest dwells, those whose planned round latency fits in their dwell (worst miss dropped, re-planned)."""
    dwell = {c.id: c.dwell_s for c in snap.candidates}
    kept, late = fit_to_dwell(_ids(snap, _longest_dwell(snap)), dwell, plan_for)
    return Selection(kept, {v: (f"predicted_latency_s={t_s:.6g} > dwell_s={dwell[v]:.6g}" if t_s != float("inf")
                                else "the optimizer has no feasible plan for it") for v, t_s in sorted(late.items())})
