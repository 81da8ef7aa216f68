"""A split round's cost for many vehicles and cuts at once (NumPy), for optimizers that search over cuts,
powers, clocks and bandwidth shares: the same numbers `costs.SplitCost` gives one at a time (tested).

Per vehicle n and cut e (CPU devices, SCHEMES.md ASFL): latency
    t = s(w_c)/R_dl + K/f + s(A)/R_ul + t_server + s(g)/R_dl + s(w_c)/R_ul
with K = client cycles of the round (forward and backward over its batches), and energy
    e = kappa K f^2 + p (s(w_c) + s(A)) / R_ul.
Rates are Shannon over the vehicle's share of its RSU's band (channel.link, vectorized); other rate modes
fall back to channel.link one link at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from channel import link

from ..wire import activation_bytes, gradient_bytes
from .api import Cost, RoundSnapshot

def batch_counts(samples: np.ndarray, batch_size: int, epochs: int, cap) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(full batches, remainder batches, remainder size) of each vehicle's round (costs.batch_sizes, counted)."""
    full, rem = samples // batch_size, samples % batch_size
    per_epoch = full + (rem > 0)
    total = per_epoch * epochs if cap is None else np.minimum(per_epoch * epochs, cap)
    n_rem = np.where(rem > 0, total // np.maximum(per_epoch, 1), 0)     # a remainder batch ends each whole epoch
    return total - n_rem, n_rem, rem


@dataclass(frozen=True)
class SplitTable:
    """Rows: the snapshot's candidates; columns: `cuts`. Arrays of what the round's cost depends on."""

    snap: RoundSnapshot
    cuts: np.ndarray             # (k,)
    cycles: np.ndarray           # (n, k) client cycles of the round
    up_bits: np.ndarray          # (n, k) client model + activations
    down_bits: np.ndarray        # (n, k) client model + gradients
    server_s: np.ndarray         # (n, k) the server's compute time for the vehicle (no queueing)
    rsu: np.ndarray              # (n,)
    f_min: np.ndarray            # (n,) lowest clock an optimizer may set
    f_max: np.ndarray            # (n,) the vehicle's clock
    kappa: np.ndarray            # (n,)
    gain: np.ndarray             # (n,) link gain
    i_ul: np.ndarray             # (n,) interference densities [W/Hz]
    i_dl: np.ndarray

    @classmethod
    def build(cls, snap: RoundSnapshot, cuts=None, bits: int = 32) -> "SplitTable":
        """The table for `cuts` (default: every profiled cut) at `bits` per activation element."""
        profiles = [p for p in snap.model.cuts if cuts is None or p.cut in cuts]
        cands = snap.candidates
        if any(c.device.kind != "cpu" for c in cands):
            raise ValueError("SplitTable models CPU devices (t = cycles / f, E = kappa cycles f^2)")
        samples = np.array([c.num_samples for c in cands], dtype=np.int64)
        s = snap.learning
        n_full, n_rem, rem = batch_counts(samples, s.batch_size, s.local_epochs, snap.settings.get("batches_per_round"))
        total = n_full * s.batch_size + n_rem * rem                       # samples trained in the round
        fpc = np.array([c.device.flops_per_cycle for c in cands])
        cols = {k: [] for k in ("cycles", "up", "down", "server")}
        for p in profiles:
            e = p.activation_elements
            act = n_full * _act_bytes(s.batch_size * e, bits) + n_rem * np.array(
                [_act_bytes(int(r) * e, bits) if r else 0 for r in rem])
            model = p.client_param_bytes * 8.0
            cols["cycles"].append(total * (p.client_fwd_flops + p.client_bwd_flops) / fpc)
            cols["up"].append(model + act * 8.0)
            cols["down"].append(model + gradient_bytes(1) * 8.0 * e * total)
            cols["server"].append(total * p.server_flops / snap.server.flops_per_s)
        stack = {k: np.stack(v, axis=1) if v else np.zeros((len(cands), 0)) for k, v in cols.items()}
        dev = [c.device for c in cands]
        return cls(snap, np.array([p.cut for p in profiles]), stack["cycles"], stack["up"],
                   stack["down"], stack["server"], np.array([c.rsu for c in cands]),
                   np.array([d.cpu_hz_min for d in dev]), np.array([d.cpu_hz for d in dev]),
                   np.array([d.kappa for d in dev]), np.array([c.gain_linear for c in cands]),
                   np.array([c.interference_ul_w_per_hz for c in cands]),
                   np.array([c.interference_dl_w_per_hz for c in cands]))

    # ---- rates -----------------------------------------------------------------------------
    @property
    def shannon(self) -> bool:
        b = self.snap.link
        return b.rate_mode == "shannon" and not (b.fading != "none" and b.fading_mode == "ergodic")

    def snr_per_watt(self, share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uplink SNR per watt of transmit power, uplink bandwidth) at each vehicle's share (Shannon links)."""
        b = self.snap.link
        bw = share * self.snap.radio.uplink_bandwidth_hz
        n0 = b.noise_w_per_hz("ul")
        return self.gain * 10.0 ** (b.antenna_gain_db / 10.0) / (n0 * bw + bw * self.i_ul), bw

    def snr_per_watt_dl(self) -> np.ndarray:
        """Downlink SNR per watt of the RSU's power over the whole band (Shannon links): the SNR on any share of
        it, times the RSU's power (constant power spectral density)."""
        b = self.snap.link
        bw = self.snap.radio.downlink_bandwidth_hz
        n0 = b.noise_w_per_hz("dl")
        return self.gain * 10.0 ** (b.antenna_gain_db / 10.0) / (n0 * bw + bw * self.i_dl)

    def rates_bps(self, share: np.ndarray, power_w: np.ndarray, row=None) -> tuple[np.ndarray, np.ndarray]:
        """(uplink, downlink) rates of every vehicle (or of vehicles `row`, one per entry) at share and power."""
        snap = self.snap
        b, r = snap.link, snap.radio
        gain, i_ul, i_dl = (self.gain, self.i_ul, self.i_dl) if row is None else (
            self.gain[row], self.i_ul[row], self.i_dl[row])
        bw_ul, bw_dl = share * r.uplink_bandwidth_hz, share * r.downlink_bandwidth_hz
        if not self.shannon:
            up = np.frompyfunc(lambda p, g, bw, i: link.rate_bps(b, "ul", p, g, bw, i), 4, 1)
            down = np.frompyfunc(lambda g, bw, i: link.rate_bps(b, "dl", r.downlink_power_w(bw), g, bw, i), 3, 1)
            return up(power_w, gain, bw_ul, i_ul).astype(float), down(gain, bw_dl, i_dl).astype(float)
        ant = 10.0 ** (b.antenna_gain_db / 10.0)
        snr_ul = power_w * gain * ant / (b.noise_w_per_hz("ul") * bw_ul + bw_ul * i_ul)
        w_dl = r.downlink_bandwidth_hz            # the RSU's power density P / W on every share of its band
        snr_dl = r.rsu_tx_power_w * gain * ant / (b.noise_w_per_hz("dl") * w_dl + w_dl * i_dl)
        return bw_ul * np.log2(1.0 + snr_ul), bw_dl * np.log2(1.0 + snr_dl)

    def uplink_rate_bps(self, share: np.ndarray, power_w: np.ndarray) -> np.ndarray:
        return self.rates_bps(share, power_w)[0]

    # ---- costs -----------------------------------------------------------------------------
    def pick(self, name: str, col: np.ndarray) -> np.ndarray:
        """Column `col[n]` of table `name` for each vehicle n."""
        return getattr(self, name)[np.arange(len(col)), col]

    def latency_s(self, col, power_w, cpu_hz, share) -> np.ndarray:
        r_ul, r_dl = self.rates_bps(share, power_w)
        return (self.pick("down_bits", col) / r_dl + self.pick("cycles", col) / cpu_hz
                + self.pick("up_bits", col) / r_ul + self.pick("server_s", col))

    def energy_j(self, col, power_w, cpu_hz, share) -> np.ndarray:
        r_ul = self.uplink_rate_bps(share, power_w)
        return self.kappa * self.pick("cycles", col) * cpu_hz ** 2 + power_w * self.pick("up_bits", col) / r_ul

    def costs(self, col, power_w, cpu_hz, share) -> list[Cost]:
        """Each vehicle's Cost (latency and energy with their parts), as costs.SplitCost gives them."""
        r_ul, r_dl = self.rates_bps(share, power_w)
        t_cp = self.pick("cycles", col) / cpu_hz
        t_cm = self.pick("down_bits", col) / r_dl + self.pick("up_bits", col) / r_ul
        t_sv = self.pick("server_s", col)
        e_cp = self.kappa * self.pick("cycles", col) * cpu_hz ** 2
        e_cm = power_w * self.pick("up_bits", col) / r_ul
        return [Cost(float(a + b + c), float(d + e), compute_s=float(a), comm_s=float(b), server_s=float(c),
                     compute_energy_j=float(d), comm_energy_j=float(e))
                for a, b, c, d, e in zip(t_cp, t_cm, t_sv, e_cp, e_cm)]


def _act_bytes(elements: int, bits: int) -> int:
    return activation_bytes(int(elements), bits)
