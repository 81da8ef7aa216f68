"""Cost models: one vehicle's predicted round latency and energy under a decision, from the round
snapshot alone. They use the simulator's own rate (channel.link), device models (cosim.compute) and wire
sizes (cosim.wire), so with a static channel and no queueing a prediction equals the timeline.
SCHEMES.md, common system model: T_up = s / R, E_up = p s / R; CPU t = cycles / f, E = kappa cycles f^2.
"""
from __future__ import annotations

from channel import link

from ..compute import device_model
from ..wire import ActivationCodec, WireCodec
from .api import Candidate, Cost, Decision, RoundSnapshot


def airtime_s(bits: float, rate_bps: float) -> float:
    """bits / rate, or inf over a link that cannot send now (a prediction, not an error)."""
    return bits / rate_bps if rate_bps > 0 else float("inf")


def tx_energy_j(power_w: float, bits: float, rate_bps: float) -> float:
    """power x bits / rate, or inf over a link that cannot send now."""
    return power_w * bits / rate_bps if rate_bps > 0 else float("inf")


def link_gain(cand: Candidate, dec: Decision) -> float:
    """The vehicle's gain on its decided subchannel (path gain x the subchannel's fading), or its path gain."""
    if dec.subchannel is None:
        return cand.gain_linear
    return cand.gain_linear * cand.subchannel_fading[dec.subchannel]


def bandwidth_hz(snap: RoundSnapshot, dec: Decision, direction: str) -> float:
    """The vehicle's bandwidth in one direction ('ul'/'dl'): a subchannel (band / M) or its share of the band."""
    r = snap.radio
    band = r.uplink_bandwidth_hz if direction == "ul" else r.downlink_bandwidth_hz
    return band / r.subchannels if dec.subchannel is not None else dec.bandwidth_share * band


def uplink_rate_bps(snap: RoundSnapshot, cand: Candidate, dec: Decision) -> float:
    """The vehicle's uplink rate at its power over its subchannel or share of the RSU's uplink band."""
    return link.rate_bps(snap.link, "ul", dec.tx_power_w, link_gain(cand, dec), bandwidth_hz(snap, dec, "ul"),
                         cand.interference_ul_w_per_hz)


def downlink_rate_bps(snap: RoundSnapshot, cand: Candidate, dec: Decision) -> float:
    """The RSU's downlink rate to the vehicle over the same subchannel (TDD: the uplink's fading) or its share,
    with its power's share of the band (constant power spectral density)."""
    bw = bandwidth_hz(snap, dec, "dl")
    return link.rate_bps(snap.link, "dl", snap.radio.downlink_power_w(bw), link_gain(cand, dec), bw,
                         cand.interference_dl_w_per_hz)


def first_download_s(snap: RoundSnapshot, cand: Candidate, dec: Decision) -> float:
    """The airtime of what the vehicle must fetch once before its first round (a LoRA scheme's frozen backbone:
    snapshot extra['backbone_bytes'][id], absent when it holds it) at its downlink rate; 0 when nothing."""
    nbytes = snap.extra.get("backbone_bytes", {}).get(cand.id, 0)
    return airtime_s(nbytes * 8.0, downlink_rate_bps(snap, cand, dec)) if nbytes else 0.0


def batch_sizes(num_samples: int, batch_size: int, local_epochs: int, cap) -> list[int]:
    """Sizes of a vehicle's minibatches in one round (every epoch, capped at `cap` batches when set)."""
    sizes = ([batch_size] * (num_samples // batch_size)
             + ([num_samples % batch_size] if num_samples % batch_size else [])) * local_epochs
    return sizes[:cap] if cap is not None else sizes


class CostModel:
    """Extension point `cost(snapshot, candidate, decision) -> Cost`. `sequential`: vehicles take turns
    (SL), so the round's latency is the sum and each vehicle ends when its turn does."""

    sequential = False

    def cost(self, snap: RoundSnapshot, cand: Candidate, dec: Decision) -> Cost:
        raise NotImplementedError


class FedAvgCost(CostModel):
    """Model download, local training over |D_n| x epochs samples, model upload."""

    def cost(self, snap: RoundSnapshot, cand: Candidate, dec: Decision) -> Cost:
        bits = snap.model.model_bytes * 8.0
        r_dl, r_ul = downlink_rate_bps(snap, cand, dec), uplink_rate_bps(snap, cand, dec)
        dev = device_model(cand.device, dec.cpu_hz)
        flops = snap.model.train_flops_per_sample * cand.num_samples * snap.learning.local_epochs
        t_dl = airtime_s(bits, r_dl) + first_download_s(snap, cand, dec)
        t_cp, t_ul = dev.time_s(flops), airtime_s(bits, r_ul)
        e_cp, e_ul = dev.energy_j(flops), tx_energy_j(dec.tx_power_w, bits, r_ul)
        return Cost(t_dl + t_cp + t_ul, e_cp + e_ul, compute_s=t_cp, comm_s=t_dl + t_ul, compute_energy_j=e_cp,
                    comm_energy_j=e_ul)


class SplitCost(CostModel):
    """Client-side model download, per batch forward + activations up + server forward and backward +
    gradients down + backward, client-side model upload (no queueing at the server: the static model the
    simulated queue departs from). Payload sizes come from the scheme's wire codec. A frozen client downloads and uploads no model and runs no backward,
    so no gradient comes down either."""

    def __init__(self, sequential: bool = False, frozen_client: bool = False, codec: WireCodec | None = None):
        self.sequential, self.frozen_client = sequential, frozen_client
        self.codec = codec if codec is not None else ActivationCodec()

    def cost(self, snap: RoundSnapshot, cand: Candidate, dec: Decision) -> Cost:
        prof = snap.model.cut(dec.cut)
        r_dl, r_ul = downlink_rate_bps(snap, cand, dec), uplink_rate_bps(snap, cand, dec)
        dev = device_model(cand.device, dec.cpu_hz)
        server_s = snap.server.flops_per_s
        model_bits = 0.0 if self.frozen_client else prof.client_param_bytes * 8.0
        t = airtime_s(model_bits, r_dl) + airtime_s(model_bits, r_ul) + first_download_s(snap, cand, dec)
        e = tx_energy_j(dec.tx_power_w, model_bits, r_ul)
        t_cp = t_sv = e_cp = 0.0
        t_cm, e_cm = t, e
        settings = snap.settings
        for b in batch_sizes(cand.num_samples, snap.learning.batch_size, snap.learning.local_epochs,
                             settings.get("batches_per_round")):
            act_bits = self.codec.upload_bytes(b, prof, dec) * 8.0
            grad_bits = 0.0 if self.frozen_client else self.codec.download_bytes(b, prof, dec) * 8.0
            fwd = prof.client_fwd_flops * b
            bwd = 0.0 if self.frozen_client else prof.client_bwd_flops * b
            t_fwd, t_bwd = dev.time_s(fwd), dev.time_s(bwd)
            t_up, t_srv, t_down = airtime_s(act_bits, r_ul), prof.server_flops * b / server_s, airtime_s(grad_bits, r_dl)
            t += t_fwd + t_up + t_srv + t_down + t_bwd
            e_b_cp = dev.energy_j(fwd) + dev.energy_j(bwd)
            e_b_up = tx_energy_j(dec.tx_power_w, act_bits, r_ul)
            e += e_b_cp + e_b_up
            t_cp, t_cm, t_sv = t_cp + t_fwd + t_bwd, t_cm + t_up + t_down, t_sv + t_srv
            e_cp, e_cm = e_cp + e_b_cp, e_cm + e_b_up
        return Cost(t, e, compute_s=t_cp, comm_s=t_cm, server_s=t_sv, compute_energy_j=e_cp, comm_energy_j=e_cm)
