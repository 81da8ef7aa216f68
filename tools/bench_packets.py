"""Benchmark: batched vs one-event-per-packet transfers on the same workload, and whether they agree.

Workload: N vehicles upload M MB each, at the same time, over links whose SNR (and so Shannon rate)
changes at every 1 s tick, with BPSK packet errors and ARQ (and optionally per-packet Rayleigh fading,
then at 15 dB more mean SNR). Both
modes run the real engine (cosim.transfer) on their own SimPy clock; wall time covers only env.run.
The last line printed is one JSON object: value = batched speed / explicit speed (packets per wall-second).

    python tools/bench_packets.py [--vehicles 10] [--mbytes 50] [--fading none|rayleigh]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import simpy

from channel.rate import mcs_rate_bps
from cosim.clock import UrgentTimeout
from cosim.transfer import Link, PacketErrors, packet_sizes_bytes, transfer


class _Ticker:
    def __init__(self, env, step_s):
        self.env, self.step_s, self.t_tick_s, self.index = env, step_s, 0.0, 0
        env.process(self._run())

    def _run(self):
        while True:
            yield UrgentTimeout(self.env, self.step_s)
            self.t_tick_s, self.index = self.env.now, self.index + 1

    def next_change_s(self):
        return self.t_tick_s + self.step_s


class _TickLink(Link):
    """SNR per tick from a schedule; the CQI/MCS table's rate over a fixed band (packet errors: that MCS's BLER)."""

    def __init__(self, ticker, snr, bandwidth_hz, tx_power_w):
        self.ticker, self.snr, self.bandwidth_hz, self.tx_power_w = ticker, snr, bandwidth_hz, tx_power_w

    def snr_linear(self):
        return float(self.snr[min(self.ticker.index, len(self.snr) - 1)])

    def rate_bps(self):
        return float(mcs_rate_bps(self.bandwidth_hz, self.snr_linear()))

    def rates_at_snr_bps(self, snr_linear):
        return mcs_rate_bps(self.bandwidth_hz, snr_linear)


def _schedules(n, ticks, seed, offset_db=0.0):
    """SNR per vehicle and tick: a random walk in dB between 9 and 14 dB (plus offset_db)."""
    rng = np.random.default_rng(seed)
    db = 11.5 + np.cumsum(rng.normal(0.0, 0.7, (n, ticks)), axis=1)
    return 10.0 ** ((np.clip(db, 9.0, 14.0) + offset_db) / 10.0)


def run(mode, nbytes, snr, errors, mtu, step_s, bandwidth_hz, seed):
    """All vehicles' transfers in one environment; returns (wall_s, per-vehicle records)."""
    env = simpy.Environment()
    ticker = _Ticker(env, step_s)
    recs = []
    procs = []
    for v in range(len(snr)):
        rec = {"times": [], "attempts": []}
        recs.append(rec)

        def sink(t, s, b, a, rec=rec):
            rec["times"].append(t.copy()), rec["attempts"].append(a.copy())

        link = _TickLink(ticker, snr[v], bandwidth_hz, 0.2)
        rng = np.random.Generator(np.random.PCG64([seed, v]))

        def proc(link=link, sink=sink, rng=rng, rec=rec):
            rec["outcome"] = yield from transfer(env, link, nbytes, mtu, ticker.next_change_s, mode, sink, errors, rng)

        procs.append(env.process(proc()))
    t0 = time.perf_counter()
    env.run(until=simpy.AllOf(env, procs))
    wall = time.perf_counter() - t0
    for rec in recs:
        rec["times"] = np.concatenate(rec["times"]) if rec["times"] else np.zeros(0)
        rec["attempts"] = np.concatenate(rec["attempts"]) if rec["attempts"] else np.zeros(0, dtype=np.int64)
    return wall, recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=10)
    ap.add_argument("--mbytes", type=float, default=50.0)
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--step-s", type=float, default=1.0)
    ap.add_argument("--bandwidth-hz", type=float, default=10e6)
    ap.add_argument("--max-retransmissions", type=int, default=4)
    ap.add_argument("--fading", choices=["none", "rayleigh"], default="none")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    nbytes = int(args.mbytes * 1e6)
    # with fading, attempts below CQI 1 (-2.1 dB) are lost: the outage floor sits a hair above it
    errors = PacketErrors("mcs", (), args.max_retransmissions, args.fading, None,
                          10 ** (-2.0 / 10) if args.fading != "none" else 0.0)
    snr = _schedules(args.vehicles, 10_000, args.seed, 5.0 if args.fading != "none" else 0.0)
    packets = args.vehicles * len(packet_sizes_bytes(nbytes, args.mtu))

    wall_b, batched = run("batched", nbytes, snr, errors, args.mtu, args.step_s, args.bandwidth_hz, args.seed)
    wall_e, explicit = run("explicit", nbytes, snr, errors, args.mtu, args.step_s, args.bandwidth_hz, args.seed)

    max_dt, exact = 0.0, True
    for b, e in zip(batched, explicit):
        ob, oe = b["outcome"], e["outcome"]
        same_shape = len(b["times"]) == len(e["times"])
        if same_shape and len(b["times"]):
            max_dt = max(max_dt, float(np.max(np.abs(b["times"] - e["times"]))))
        exact &= (same_shape and np.array_equal(b["attempts"], e["attempts"])
                  and (ob.status, ob.cause, ob.retransmissions, ob.packets_delivered)
                  == (oe.status, oe.cause, oe.retransmissions, oe.packets_delivered)
                  and abs(ob.t_end_s - oe.t_end_s) <= 1e-9
                  and math.isclose(ob.energy_j, oe.energy_j, rel_tol=1e-9))
    exact &= max_dt <= 1e-9
    rate_b, rate_e = packets / wall_b, packets / wall_e
    ratio = rate_b / rate_e
    retx = sum(b["outcome"].retransmissions for b in batched)
    sim_s = max(b["outcome"].t_end_s for b in batched)
    print(f"workload: {args.vehicles} vehicles x {args.mbytes:g} MB, {packets} packets, rate changes every "
          f"{args.step_s:g} s, MCS rates and BLER with up to {args.max_retransmissions} retransmissions "
          f"(fading: {args.fading}); {retx} retransmissions, {sim_s:.1f} s simulated")
    print(f"explicit: {wall_e:.2f} s wall, {rate_e:,.0f} packets/s")
    print(f"batched:  {wall_b:.3f} s wall, {rate_b:,.0f} packets/s")
    print(f"ratio:    {ratio:.1f}x; max |delivery time difference| = {max_dt:.3g} s; exact: {exact}")
    print(json.dumps({
        "bench": "packets", "value": round(ratio, 2), "unit": "x explicit mode", "exact": bool(exact),
        "packets": packets, "vehicles": args.vehicles, "mbytes_per_vehicle": args.mbytes,
        "explicit_packets_per_s": round(rate_e), "batched_packets_per_s": round(rate_b),
        "explicit_wall_s": round(wall_e, 3), "batched_wall_s": round(wall_b, 4),
        "max_delivery_time_diff_s": max_dt, "retransmissions": retx, "simulated_s": round(sim_s, 3),
        "per": "mcs", "max_retransmissions": args.max_retransmissions, "fading": args.fading,
        "tick_s": args.step_s, "payload_reduced": args.mbytes < 50.0,
    }))


if __name__ == "__main__":
    main()
