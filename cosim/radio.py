"""The radio side of the World: every link's gain per tick (vectorized), SNR and rate, bandwidth pools.

Per tick, in this order of draws from the "channel" stream: LOS states of links that need one and
have none (one uniform each, vehicles in snapshot order, RSUs in index order; a link keeps its state
while the vehicle is present, so it is drawn when the vehicle first associates with that RSU), then one
standard normal per vehicle for its shadowing (if on), then whatever the model draws itself (NLOSv
blockage of the TR 37.885 models). `channel.models.link_gain_linear` is called once per tick for all
links; the 'seed' model is computed in linear form (h0 d^-gamma), which the registry would round through
dB, so that the seed papers' numbers stay bit-exact.

Shadowing is per vehicle (Gudmundson AR(1) along its travelled distance, unit variance) scaled by the
sigma of its link's state; interferer links share their vehicle's shadowing. Interference (optional,
reuse 1): every covered vehicle of another cell (uplink) or every other RSU (downlink) transmits with
probability `activity`, its power spread evenly over the band, so its density adds to the noise's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import simpy

from channel import models
from channel import seed as ch
from channel.fading import ergodic_rate_bps
from channel.rate import mcs_rate_bps
from channel.shadowing import next_shadowing_db, shadowing_params

from .rng import RngStreams
from .transfer import NO_ERRORS, PacketErrors

_UNDRAWN = -1


@dataclass(frozen=True)
class RadioParams:
    """What the per-tick channel evaluation and the transfers need (defaults: the seed model, ideal packets)."""

    h0: float
    pathloss_exponent: float
    noise_dbm_per_hz: float
    noise_figure_db: float
    model: str = "seed"
    carrier_hz: float = 5.9e9
    model_params: tuple = ()                  # (name, value) pairs for channel.models
    antenna_gain_db: float = 0.0              # vehicle + RSU antenna gains
    shadowing: bool = False
    shadowing_sigma_db: Optional[float] = None          # None: channel.shadowing table per model and state
    shadowing_decorrelation_m: Optional[float] = None
    fading: str = "none"                      # none | rayleigh | rician
    k_factor: Optional[float] = None
    fading_mode: str = "per_packet"           # per_packet (in `errors`) | ergodic (in the rate)
    rate_mode: str = "shannon"                # shannon | mcs
    target_ber: float = 5e-5
    errors: PacketErrors = NO_ERRORS          # PER, ARQ limit, per-packet fading
    interference: bool = False
    interference_activity: float = 1.0
    vehicle_tx_power_w: float = 0.2
    rsu_tx_power_w: float = 1.0
    uplink_bandwidth_hz: float = 20e6
    downlink_bandwidth_hz: float = 20e6
    work_conserving: bool = False
    backhaul: object = field(default=None, compare=False)               # cosim.backhaul.Backhaul or None
    streams: Optional[RngStreams] = field(default=None, compare=False)  # for the "channel" stream

    @property
    def ideal_seed(self) -> bool:
        return self.model == "seed" and not self.shadowing and not self.interference


class BandwidthPool:
    """One RSU's band in one direction. Static: each transfer keeps its share. Work-conserving: the share
    of a transfer that ends goes to those still active, in proportion to their shares, until none is
    left (then the pool forgets it), capped at the band. `changed` fires at each change."""

    def __init__(self, env: simpy.Environment, capacity_hz: float):
        self.env, self.capacity_hz = env, float(capacity_hz)
        self.active: dict[int, float] = {}
        self.freed_hz = 0.0
        self.changed = env.event()
        self._tokens = 0

    def join(self, base_hz: float) -> int:
        token, self._tokens = self._tokens, self._tokens + 1
        others = bool(self.active)
        self.active[token] = float(base_hz)
        if others and self.freed_hz > 0.0:
            self._signal()
        return token

    def leave(self, token: int) -> None:
        base = self.active.pop(token)
        if self.active:
            self.freed_hz += base
            self._signal()
        else:
            self.freed_hz = 0.0

    def bandwidth_hz(self, token: int) -> float:
        base = self.active[token]
        total = sum(self.active.values())
        extra = min(self.freed_hz, max(self.capacity_hz - total, 0.0))
        return base + extra * (base / total) if extra > 0.0 else base

    def _signal(self) -> None:
        old, self.changed = self.changed, self.env.event()
        old.succeed(self.env.now)


class RadioState:
    """Per-link radio state (LOS, shadowing, interference) kept across ticks, and the bandwidth pools."""

    def __init__(self, env: simpy.Environment, params: RadioParams, n_rsus: int, step_s: float = 1.0):
        self.env, self.params, self.n_rsus, self.step_s = env, params, n_rsus, float(step_s)
        self.t_tick_s = float(env.now)       # SimPy's time of the last evaluation (the last tick)
        self._rng: Optional[np.random.Generator] = None
        self._has_los = models.get_model(params.model).los_probability is not None
        self.los: dict[str, np.ndarray] = {}         # per vehicle: per RSU 1 LOS, 0 not, -1 not drawn
        self.shadow_z: dict[str, float] = {}         # per vehicle: unit-variance shadowing state
        self.xy_m: dict[str, np.ndarray] = {}
        self.interference_psd_w_hz: dict[tuple[str, str], float] = {}   # (vehicle, 'ul'|'dl')
        self.pools: dict[tuple[int, str], BandwidthPool] = {}
        self._transfers: dict[tuple[str, str], int] = {}

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            if self.params.streams is None:
                raise ValueError("RadioParams.streams is None: LOS states and shadowing draw from the "
                                 "'channel' stream (build_radio(sc, streams) sets it)")
            self._rng = self.params.streams.get("channel")
        return self._rng

    @property
    def next_tick_s(self) -> float:
        """SimPy's time of the next tick: the mobility process waits step_s from this tick, so this is
        bit-exact (a source's own clock, e.g. k * step_s, may differ from it in the last bits)."""
        return self.t_tick_s + self.step_s

    def next_transfer_key(self, vehicle_id: str, direction: str) -> int:
        """How many transfers this vehicle has started in this direction before (for per-transfer seeds)."""
        key = (vehicle_id, direction)
        n = self._transfers.get(key, 0)
        self._transfers[key] = n + 1
        return n

    def pool(self, rsu: int, direction: str) -> BandwidthPool:
        key = (rsu, direction)
        if key not in self.pools:
            p = self.params
            cap = p.uplink_bandwidth_hz if direction == "ul" else p.downlink_bandwidth_hz
            self.pools[key] = BandwidthPool(self.env, cap)
        return self.pools[key]

    # ---- per tick ---------------------------------------------------------------------------------
    def evaluate(self, ids: list[str], xy_m: np.ndarray, dist_m: np.ndarray, rsu_idx: np.ndarray) -> np.ndarray:
        """Gain (linear) of each vehicle's link to its RSU (0 when uncovered); updates the link state."""
        p = self.params
        self.t_tick_s = float(self.env.now)
        n = len(ids)
        rows = np.arange(n)
        covered = rsu_idx >= 0
        d_assoc = np.where(covered, dist_m[rows, np.maximum(rsu_idx, 0)] if n else 0.0, np.inf)
        if p.ideal_seed:                        # the seed papers' channel, exactly as they compute it
            return np.where(covered, ch.seed_gain_linear(np.minimum(d_assoc, 1e12), p.h0, p.pathloss_exponent), 0.0)
        present = set(ids)
        self._forget([v for v in self.los if v not in present])
        full = p.interference
        los = self._los(ids, dist_m, rsu_idx, covered, full)
        state_assoc = los[rows, np.maximum(rsu_idx, 0)] if n else np.zeros(0, dtype=np.int8)
        shadow_db = self._shadowing(ids, xy_m, np.where(covered, state_assoc, 1)) if p.shadowing else None
        if full:                                # every vehicle to every RSU (interference needs them)
            sh = None if shadow_db is None else np.broadcast_to(shadow_db[:, None], dist_m.shape)
            g = self._gain(dist_m, los, sh)
            self._interference(ids, g, rsu_idx, covered)
            return np.where(covered, g[rows, np.maximum(rsu_idx, 0)] if n else 0.0, 0.0)
        gain = np.zeros(n)                      # the associated links only
        gain[covered] = self._gain(d_assoc[covered], state_assoc[covered],
                                   None if shadow_db is None else shadow_db[covered])
        return gain

    def _forget(self, gone: list[str]) -> None:
        for vid in gone:
            for store in (self.los, self.shadow_z, self.xy_m):
                store.pop(vid, None)
            self.interference_psd_w_hz.pop((vid, "ul"), None)
            self.interference_psd_w_hz.pop((vid, "dl"), None)

    def path_gains(self, ids: list[str], dist_m: np.ndarray, in_range: np.ndarray) -> np.ndarray:
        """(n, k) path gain (linear, no shadowing or fading, which are per vehicle and per packet) of every
        in-range link, 0 elsewhere: what association by strongest received power ranks. Draws the LOS
        state of in-range links that have none (held afterwards, as for associated links)."""
        g = np.zeros(dist_m.shape)
        if not in_range.any():
            return g
        los = self._los(ids, dist_m, None, None, False, want=in_range)
        g[in_range] = self._gain(dist_m[in_range], los[in_range], None)
        return g

    def _los(self, ids, dist_m, rsu_idx, covered, full, want: Optional[np.ndarray] = None) -> np.ndarray:
        """(n, k) LOS states (1/0); links drawn when first needed and held while the vehicle is present.
        `want` (n, k), if given, names the links needed instead of the associated (or all covered) ones."""
        n, k = len(ids), self.n_rsus
        los = np.empty((n, k), dtype=np.int8)
        for i, vid in enumerate(ids):
            los[i] = self.los.setdefault(vid, np.full(k, _UNDRAWN, dtype=np.int8))
        if not self._has_los:
            return np.ones((n, k), dtype=np.int8)
        need = np.zeros((n, k), dtype=bool)
        if want is not None:
            need = want.copy()
        elif full:
            need[covered] = True
        elif n:
            need[np.flatnonzero(covered), rsu_idx[covered]] = True
        need &= los == _UNDRAWN
        if need.any():
            drawn = models.draw_los(self.params.model, dist_m[need], self.rng)
            los[need] = drawn.astype(np.int8)
            for i in np.flatnonzero(need.any(axis=1)):
                self.los[ids[i]] = los[i].copy()
        return los

    def _state_params(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shadowing sigma [dB] and decorrelation [m] per vehicle, from its link's LOS state."""
        p = self.params
        if p.shadowing_sigma_db is not None and p.shadowing_decorrelation_m is not None:
            return np.full(len(states), p.shadowing_sigma_db), np.full(len(states), p.shadowing_decorrelation_m)
        if self._has_los:
            nlos_name = "nlosv" if p.model.startswith("tr37885") else "nlos"
            los_p, nlos_p = shadowing_params(p.model, "los"), shadowing_params(p.model, nlos_name)
        else:
            los_p = nlos_p = shadowing_params(p.model, "any")
        sigma = np.where(states == 0, nlos_p.sigma_db, los_p.sigma_db)
        d_corr = np.where(states == 0, nlos_p.decorrelation_m, los_p.decorrelation_m)
        if p.shadowing_sigma_db is not None:
            sigma = np.full(len(states), p.shadowing_sigma_db)
        if p.shadowing_decorrelation_m is not None:
            d_corr = np.full(len(states), p.shadowing_decorrelation_m)
        return sigma, d_corr

    def _shadowing(self, ids, xy_m, states) -> np.ndarray:
        """Shadowing [dB] per vehicle: one AR(1) step along the distance travelled since the last tick."""
        n = len(ids)
        prev = np.array([self.shadow_z.get(v, 0.0) for v in ids])
        moved = np.array([np.hypot(*(xy_m[i] - self.xy_m[v])) if v in self.shadow_z else np.inf
                          for i, v in enumerate(ids)]) if n else np.zeros(0)
        sigma, d_corr = self._state_params(states)
        # new vehicles: rho = exp(-inf) = 0, so their first value is a fresh N(0, 1)
        z = next_shadowing_db(prev, moved, 1.0, d_corr, self.rng) if n else np.zeros(0)
        for i, vid in enumerate(ids):
            self.shadow_z[vid] = float(z[i])
            self.xy_m[vid] = xy_m[i]
        return sigma * z

    def _gain(self, d_m: np.ndarray, los: np.ndarray, shadow_db: Optional[np.ndarray]) -> np.ndarray:
        p = self.params
        if d_m.size == 0:
            return np.zeros(d_m.shape)
        if p.model == "seed":
            g = ch.seed_gain_linear(d_m, p.h0, p.pathloss_exponent)
            return g if shadow_db is None else g * 10.0 ** (-np.asarray(shadow_db) / 10.0)
        kw = dict(p.model_params)
        if self._has_los:
            kw["los"] = np.asarray(los).astype(bool)
        if shadow_db is not None:
            kw["shadowing_db"] = np.asarray(shadow_db, dtype=float)
        return models.link_gain_linear(p.model, d_m, p.carrier_hz, self.rng, **kw)

    def _interference(self, ids, g: np.ndarray, rsu_idx: np.ndarray, covered: np.ndarray) -> None:
        """Interference power density [W/Hz] on each covered vehicle's uplink (at its RSU) and downlink."""
        p = self.params
        ant = 10.0 ** (p.antenna_gain_db / 10.0)
        own = np.zeros(g.shape, dtype=bool)
        if len(ids):
            own[np.flatnonzero(covered), rsu_idx[covered]] = True
        # uplink: at RSU r, the covered vehicles of the other cells
        tx_ul = (covered[:, None] & ~own) * (p.vehicle_tx_power_w / p.uplink_bandwidth_hz)
        at_rsu = p.interference_activity * ant * (tx_ul * g).sum(axis=0)
        # downlink: at vehicle v, every RSU but its own
        at_veh = p.interference_activity * ant * (p.rsu_tx_power_w / p.downlink_bandwidth_hz) * (g * ~own).sum(axis=1)
        for i, vid in enumerate(ids):
            if covered[i]:
                self.interference_psd_w_hz[(vid, "ul")] = float(at_rsu[rsu_idx[i]])
                self.interference_psd_w_hz[(vid, "dl")] = float(at_veh[i])
            else:
                self.interference_psd_w_hz.pop((vid, "ul"), None)
                self.interference_psd_w_hz.pop((vid, "dl"), None)

    # ---- SNR and rates -----------------------------------------------------------------------------
    def snr_linear(self, vehicle_id: str, gain_linear: float, tx_power_w: float, bandwidth_hz: float,
                   direction: Optional[str] = None) -> float:
        """(S)INR of a link; interference only when on and the direction ('ul'/'dl') is given."""
        p = self.params
        i_psd = self.interference_psd_w_hz.get((vehicle_id, direction), 0.0) if direction else 0.0
        if i_psd == 0.0:
            return float(ch.snr_linear(tx_power_w, gain_linear, bandwidth_hz, p.noise_dbm_per_hz, p.noise_figure_db,
                                       p.antenna_gain_db))
        rx_w = tx_power_w * gain_linear * 10.0 ** (p.antenna_gain_db / 10.0)
        noise_w = float(ch.noise_power_w(bandwidth_hz, p.noise_dbm_per_hz, p.noise_figure_db))
        return float(rx_w / (noise_w + bandwidth_hz * i_psd))

    def rate_bps(self, bandwidth_hz: float, snr_linear: float) -> float:
        """The link's rate at its mean SNR: Shannon, ergodic Shannon under fading, or the MCS table's."""
        p = self.params
        if p.rate_mode == "mcs":
            return float(mcs_rate_bps(bandwidth_hz, snr_linear, p.target_ber))
        if p.fading != "none" and p.fading_mode == "ergodic":
            return float(ergodic_rate_bps(bandwidth_hz, snr_linear, p.fading, p.k_factor))
        return float(ch.shannon_rate_bps(bandwidth_hz, snr_linear))

    def rates_at_snr_bps(self, bandwidth_hz: float, snr_linear: np.ndarray) -> np.ndarray:
        """Rates at instantaneous SNRs (per-packet fading): Shannon or the MCS table's."""
        if self.params.rate_mode == "mcs":
            return mcs_rate_bps(bandwidth_hz, snr_linear, self.params.target_ber)
        return ch.shannon_rate_bps(bandwidth_hz, snr_linear)
