"""The baseline allocation: equal bandwidth shares per RSU (the whole band each when vehicles take turns),
maximum power, each vehicle at its own clock, the scheme's cut and activation bits."""
from __future__ import annotations

import itertools
from typing import Mapping

from ..registry import register_optimizer, scheme
from .api import Cost, Decision, Plan, RoundSnapshot


def equal_shares(selected: list[str], rsu_of: Mapping[str, int]) -> dict[str, float]:
    """Each RSU splits its band equally among its selected vehicles."""
    per_rsu: dict[int, int] = {}
    for v in selected:
        per_rsu[rsu_of[v]] = per_rsu.get(rsu_of[v], 0) + 1
    return {v: 1.0 / per_rsu[rsu_of[v]] for v in selected}


def assemble(selected: list[str], decisions: Mapping[str, Decision], costs: Mapping[str, Cost], sequential: bool,
             round_decisions: Mapping | None = None, stats: Mapping | None = None) -> Plan:
    """The plan of per-vehicle decisions and costs: in parallel, the round lasts its slowest vehicle's
    latency; in turns (sequential), each vehicle ends when its turn does and the round lasts their sum."""
    lat = [costs[v].latency_s for v in selected]
    if sequential:
        ends = dict(zip(selected, itertools.accumulate(lat)))
        latency = float(sum(lat))
    else:
        ends = dict(zip(selected, lat))
        latency = max(lat, default=0.0)
    energy = float(sum(costs[v].energy_j for v in selected))
    return Plan(tuple(selected), dict(decisions), dict(costs), ends, latency, energy, dict(round_decisions or {}),
                dict(stats or {}))


def default_decision(snap: RoundSnapshot, share: float) -> Decision:
    """The scheme's settings for one vehicle: `share` of the band, maximum power, its own clock."""
    s = snap.settings
    return Decision(bandwidth_share=share, tx_power_w=snap.radio.vehicle_tx_power_w, cut=s.get("cut"),
                    activation_bits=s.get("activation_bits", 32))


@register_optimizer("baseline")
def baseline(snap: RoundSnapshot) -> Plan:
    """Equal bandwidth shares per RSU (whole band in turns), maximum power, own clock, the scheme's cut."""
    model = scheme(snap.scheme).cost
    ids = [c.id for c in snap.candidates]
    shares = {v: 1.0 for v in ids} if model.sequential else equal_shares(ids, {c.id: c.rsu for c in snap.candidates})
    decisions = {c.id: default_decision(snap, shares[c.id]) for c in snap.candidates}
    costs = {c.id: model.cost(snap, c, decisions[c.id]) for c in snap.candidates}
    return assemble(ids, decisions, costs, model.sequential)
