"""The baseline allocation: random, all or dwell-ranked selection, equal bandwidth, maximum power."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Plan:
    """What an optimizer decides for one round: who, with what share and power, and its prediction."""

    selected: tuple[str, ...]
    bandwidth_share: dict[str, float]
    tx_power_w: dict[str, float]
    predicted_latency_s: float
    predicted_energy_j: float
    latency_s: dict[str, float] = field(default_factory=dict)    # each vehicle's predicted round latency


def select(ids: list[str], dwell_s: np.ndarray, k: int, rule: str, min_dwell_s: float,
           rng: np.random.Generator) -> list[str]:
    """Selection rules: 'all'; 'random' k among covered; 'dwell' (and 'dwell_fit', see `fit_to_dwell`)
    the k longest predicted dwells >= min."""
    eligible = [i for i, d in enumerate(dwell_s) if d >= min_dwell_s]
    if rule == "all":
        chosen = eligible
    elif rule == "random":
        chosen = sorted(rng.choice(eligible, size=min(k, len(eligible)), replace=False).tolist()) if eligible else []
    elif rule in ("dwell", "dwell_fit"):
        chosen = sorted(sorted(eligible, key=lambda i: (-dwell_s[i], ids[i]))[:k])
    else:
        raise ValueError(f"selection rule {rule!r}: expected all, random, dwell or dwell_fit")
    return [ids[i] for i in chosen]


def equal_shares(selected: list[str], rsu_of: dict[str, int]) -> dict[str, float]:
    """Each RSU splits its band equally among its selected vehicles."""
    per_rsu: dict[int, int] = {}
    for v in selected:
        per_rsu[rsu_of[v]] = per_rsu.get(rsu_of[v], 0) + 1
    return {v: 1.0 / per_rsu[rsu_of[v]] for v in selected}


def plan_baseline(selected: list[str], rsu_of: dict[str, int], max_power_w: float,
                  predict) -> Plan:
    """Equal shares, max power; `predict(vehicle, share, power) -> (latency_s, energy_j)` is the
    shared cost function the simulator also uses."""
    shares = equal_shares(selected, rsu_of)
    power = {v: max_power_w for v in selected}
    costs = [predict(v, shares[v], power[v]) for v in selected]
    latency = max((c[0] for c in costs), default=0.0)
    energy = float(sum(c[1] for c in costs))
    return Plan(tuple(selected), shares, power, latency, energy, {v: c[0] for v, c in zip(selected, costs)})


def fit_to_dwell(chosen: list[str], dwell_s: dict[str, float], plan_for) -> tuple[list[str], dict[str, float]]:
    """Keep the vehicles whose predicted round latency fits in their predicted dwell (the seed papers'
    mobility-aware selection, T_n <= t_hold): plan the set; while some vehicle would not finish in time,
    drop the one that misses by the most and plan the rest again (their shares grow, latencies fall).
    `plan_for(ids) -> Plan`; returns the kept ids and each dropped one's predicted latency when dropped."""
    dropped: dict[str, float] = {}
    while chosen:
        latency = plan_for(chosen).latency_s
        worst = min(chosen, key=lambda v: (dwell_s[v] - latency[v], v))
        if latency[worst] <= dwell_s[worst]:
            break
        dropped[worst] = latency[worst]
        chosen = [v for v in chosen if v != worst]
    return chosen, dropped
