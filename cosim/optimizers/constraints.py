"""The constraints every plan must keep, checked against its snapshot (tests, `cosim optimize`)."""
from __future__ import annotations

from .api import Plan, RoundSnapshot

TOLERANCE = 1e-9


def violations(snap: RoundSnapshot, plan: Plan) -> list[str]:
    """What `plan` breaks, one line each: vehicles not among the candidates, bandwidth shares per RSU above 1
    (in parallel schemes), power or clock outside the vehicle's range, cuts the model has no profile for,
    a subchannel outside the RSU's or given twice there, a per-vehicle energy above the budget."""
    from .. import registry

    out = []
    by_id = {c.id: c for c in snap.candidates}
    unknown = [v for v in plan.selected if v not in by_id]
    if unknown:
        return [f"selected vehicles that are not candidates: {unknown}"]
    if len(set(plan.selected)) != len(plan.selected):
        out.append("a vehicle selected twice")
    missing = [v for v in plan.selected if v not in plan.decisions or v not in plan.costs]
    if missing:
        return out + [f"selected vehicles without a decision or cost: {missing}"]
    sequential = registry.scheme(snap.scheme).cost.sequential
    per_rsu: dict[int, float] = {}
    subchannels: dict[tuple[int, int], str] = {}
    cuts = {c.cut for c in snap.model.cuts}
    radio, energy_cap = snap.radio, snap.budgets.vehicle_energy_j
    for vid in plan.selected:
        d, c, dev = plan.decisions[vid], by_id[vid], by_id[vid].device
        if not 0.0 < d.bandwidth_share <= 1.0 + TOLERANCE:
            out.append(f"{vid}: bandwidth_share {d.bandwidth_share!r} outside (0, 1]")
        per_rsu[c.rsu] = per_rsu.get(c.rsu, 0.0) + d.bandwidth_share
        if not radio.vehicle_min_tx_power_w * (1 - TOLERANCE) <= d.tx_power_w <= radio.vehicle_tx_power_w * (1 + TOLERANCE):
            out.append(f"{vid}: tx_power_w {d.tx_power_w!r} outside [{radio.vehicle_min_tx_power_w}, "
                       f"{radio.vehicle_tx_power_w}]")
        if d.cpu_hz is not None and not dev.cpu_hz_min * (1 - TOLERANCE) <= d.cpu_hz <= dev.cpu_hz * (1 + TOLERANCE):
            out.append(f"{vid}: cpu_hz {d.cpu_hz!r} outside [{dev.cpu_hz_min}, {dev.cpu_hz}]")
        if d.cut is not None and d.cut not in cuts:
            out.append(f"{vid}: cut {d.cut} is not a profiled split point {sorted(cuts)}")
        if d.subchannel is not None:
            if not 0 <= d.subchannel < radio.subchannels or len(c.subchannel_fading) != radio.subchannels:
                out.append(f"{vid}: subchannel {d.subchannel} outside the RSU's {radio.subchannels} subchannels")
            elif abs(d.bandwidth_share * radio.subchannels - 1.0) > TOLERANCE:
                out.append(f"{vid}: bandwidth_share {d.bandwidth_share!r} is not one subchannel (1/{radio.subchannels})")
            key = (c.rsu, d.subchannel)
            if key in subchannels:
                out.append(f"{vid}: subchannel {d.subchannel} of RSU {c.rsu} also given to {subchannels[key]}")
            subchannels[key] = vid
        if energy_cap is not None and plan.costs[vid].energy_j > energy_cap * (1 + TOLERANCE):
            out.append(f"{vid}: predicted energy {plan.costs[vid].energy_j:.6g} J above the budget {energy_cap:g} J")
    if not sequential:
        out += [f"RSU {rsu}: bandwidth shares sum to {total:.9g} > 1" for rsu, total in sorted(per_rsu.items())
                if total > 1.0 + TOLERANCE]
    return out
