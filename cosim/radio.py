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
from functools import cached_property
from itertools import repeat
from typing import Optional

import zlib

import numpy as np
import simpy

from channel import link, models
from channel import seed as ch
from channel.fading import power_fading
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
    on_arq_limit: str = "abort"               # abort | resend (the rest, as a new transfer)
    interference: bool = False
    interference_activity: float = 1.0
    vehicle_tx_power_w: float = 0.2
    rsu_tx_power_w: float = 1.0
    uplink_bandwidth_hz: float = 20e6
    downlink_bandwidth_hz: float = 20e6
    work_conserving: bool = False
    subchannels: int = 0                      # orthogonal subchannels per RSU band (0: not divided)
    subchannel_fading: str = "rayleigh"       # their block fading per vehicle and round
    subchannel_k_factor: Optional[float] = None
    backhaul: object = field(default=None, compare=False)               # cosim.backhaul.Backhaul or None
    streams: Optional[RngStreams] = field(default=None, compare=False)  # for the "channel" stream

    @cached_property
    def budget(self) -> link.LinkBudget:
        """The settings a link's rate depends on besides gain, power and bandwidth."""
        return link.LinkBudget(self.noise_dbm_per_hz, self.noise_figure_db, self.antenna_gain_db, self.rate_mode,
                               self.target_ber, self.fading, self.fading_mode, self.k_factor)

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
    """Per-link radio state (LOS, shadowing, interference) kept across ticks, and the bandwidth pools.

    The state is held in arrays aligned with the rows of the last tick's vehicles and carried over to the
    next tick's rows (one gather, not a Python loop over vehicles): a vehicle keeps its state while it
    is present and loses it when it leaves.
    """

    def __init__(self, env: simpy.Environment, params: RadioParams, n_rsus: int, step_s: float = 1.0):
        self.env, self.params, self.n_rsus, self.step_s = env, params, n_rsus, float(step_s)
        self.t_tick_s = float(env.now)       # SimPy's time of the last evaluation (the last tick)
        self._rng: Optional[np.random.Generator] = None
        self._has_los = models.get_model(params.model).los_probability is not None
        self._ids: tuple[str, ...] = ()
        self._index: Optional[dict[str, int]] = None                  # id -> row, built when asked
        self._los = np.zeros((0, n_rsus), dtype=np.int8)              # per link: 1 LOS, 0 not, -1 not drawn
        self._shadow_z = np.zeros(0)                                  # unit-variance shadowing; NaN: none yet
        self._xy_m = np.zeros((0, 2))                                 # where _shadow_z was last stepped
        self._i_psd = np.zeros((0, 2))                                # interference [W/Hz]: ul, dl
        self.pools: dict[tuple[int, str], BandwidthPool] = {}
        self._transfers: dict[tuple[str, str], int] = {}
        self._subchannel_fading: dict[str, tuple[int, np.ndarray]] = {}

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

    def subchannel_fading(self, vehicle_id: str, round_: int) -> np.ndarray:
        """The vehicle's block fading (unit-mean power gain) on each subchannel in round `round_`: drawn once
        per vehicle and round from a generator seeded by (run seed, 'channel.subchannels', round, vehicle),
        so it depends neither on the order vehicles are asked in nor on the other draws."""
        p = self.params
        held = self._subchannel_fading.get(vehicle_id)
        if held is not None and held[0] == round_:
            return held[1]
        if p.streams is None:
            raise ValueError("RadioParams.streams is None: subchannel fading draws from the run's streams")
        rng = np.random.default_rng(p.streams.seed_for("channel.subchannels", round_,
                                                       zlib.crc32(vehicle_id.encode("utf-8"))))
        fading = power_fading(p.subchannels, p.subchannel_fading, rng, p.subchannel_k_factor)
        fading.setflags(write=False)
        self._subchannel_fading[vehicle_id] = (round_, fading)
        return fading

    # ---- inspection (tests, notebooks) --------------------------------------------------------------
    def _row_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = dict(zip(self._ids, range(len(self._ids))))
        return self._index

    def _row(self, vehicle_id: str) -> Optional[int]:
        return self._row_index().get(vehicle_id)

    @property
    def los(self) -> dict[str, np.ndarray]:
        """LOS state per vehicle present and RSU (1 LOS, 0 not, -1 not drawn), as of the last tick."""
        return {v: self._los[i].copy() for i, v in enumerate(self._ids)}

    @property
    def shadow_z(self) -> dict[str, float]:
        """Unit-variance shadowing state per vehicle present (those that have one)."""
        return {v: float(z) for v, z in zip(self._ids, self._shadow_z) if not np.isnan(z)}

    # ---- per tick ---------------------------------------------------------------------------------
    def _carry(self, ids: tuple[str, ...], prev: Optional[tuple]) -> None:
        """Re-align the state with this tick's vehicles. `prev` = (old_ids, prev_rows), prev_rows[i] being
        the row of ids[i] in old_ids or -1: the World's mapping, used when old_ids are the ids this state
        holds (else each id is looked up)."""
        if ids == self._ids:
            return
        n = len(ids)
        prev_rows = prev[1] if prev is not None and prev[0] is self._ids else None
        if prev_rows is None:
            prev_rows = np.fromiter(map(self._row_index().get, ids, repeat(-1)), dtype=int, count=n)
        has = prev_rows >= 0
        src = prev_rows[has]
        los = np.full((n, self.n_rsus), _UNDRAWN, dtype=np.int8)
        los[has] = self._los[src]
        z = np.full(n, np.nan)
        z[has] = self._shadow_z[src]
        xy = np.zeros((n, 2))
        xy[has] = self._xy_m[src]
        i_psd = np.zeros((n, 2))
        i_psd[has] = self._i_psd[src]
        self._ids, self._index = ids, None
        self._los, self._shadow_z, self._xy_m, self._i_psd = los, z, xy, i_psd

    def evaluate(self, ids, xy_m: np.ndarray, dist_m: np.ndarray, rsu_idx: np.ndarray,
                 prev: Optional[tuple] = None) -> np.ndarray:
        """Gain (linear) of each vehicle's link to its RSU (0 when uncovered); updates the link state.
        `prev` (optional): (the previous call's ids, each vehicle's row in them or -1), see `_carry`."""
        p = self.params
        self.t_tick_s = float(self.env.now)
        ids = tuple(ids)
        n = len(ids)
        rows = np.arange(n)
        covered = rsu_idx >= 0
        d_assoc = np.where(covered, dist_m[rows, np.maximum(rsu_idx, 0)] if n else 0.0, np.inf)
        if p.ideal_seed:                        # the seed papers' channel, exactly as they compute it
            return np.where(covered, ch.seed_gain_linear(np.minimum(d_assoc, 1e12), p.h0, p.pathloss_exponent), 0.0)
        self._carry(ids, prev)
        full = p.interference
        los = self._los_states(dist_m, rsu_idx, covered, full)
        state_assoc = los[rows, np.maximum(rsu_idx, 0)] if n else np.zeros(0, dtype=np.int8)
        shadow_db = self._shadowing(xy_m, np.where(covered, state_assoc, 1)) if p.shadowing else None
        if full:                                # every vehicle to every RSU (interference needs them)
            sh = None if shadow_db is None else np.broadcast_to(shadow_db[:, None], dist_m.shape)
            g = self._gain(dist_m, los, sh)
            self._interference(g, rsu_idx, covered)
            return np.where(covered, g[rows, np.maximum(rsu_idx, 0)] if n else 0.0, 0.0)
        gain = np.zeros(n)                      # the associated links only
        gain[covered] = self._gain(d_assoc[covered], state_assoc[covered],
                                   None if shadow_db is None else shadow_db[covered])
        return gain

    def path_gains(self, ids, dist_m: np.ndarray, in_range: np.ndarray, prev: Optional[tuple] = None) -> np.ndarray:
        """(n, k) path gain (linear, no shadowing or fading, which are per vehicle and per packet) of every
        in-range link, 0 elsewhere: what association by strongest received power ranks. Draws the LOS
        state of in-range links that have none (held afterwards, as for associated links)."""
        self._carry(tuple(ids), prev)
        g = np.zeros(dist_m.shape)
        if not in_range.any():
            return g
        los = self._los_states(dist_m, None, None, False, want=in_range)
        g[in_range] = self._gain(dist_m[in_range], los[in_range], None)
        return g

    def _los_states(self, dist_m, rsu_idx, covered, full, want: Optional[np.ndarray] = None) -> np.ndarray:
        """(n, k) LOS states (1/0; -1 not drawn): links drawn when first needed and held while the vehicle
        is present. `want` (n, k), if given, names the links needed instead of the associated (or all
        covered) ones. Returns the held array itself: read it, do not write it."""
        los = self._los
        n = len(los)
        if not self._has_los:
            return np.ones(los.shape, dtype=np.int8)
        if want is not None:
            need = want.copy()
        else:
            need = np.zeros(los.shape, dtype=bool)
            if full:
                need[covered] = True
            elif n:
                need[np.flatnonzero(covered), rsu_idx[covered]] = True
        need &= los == _UNDRAWN
        if need.any():
            los[need] = models.draw_los(self.params.model, dist_m[need], self.rng).astype(np.int8)
        return los                      # the held states themselves: callers only read them

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

    def _shadowing(self, xy_m: np.ndarray, states: np.ndarray) -> np.ndarray:
        """Shadowing [dB] per vehicle: one AR(1) step along the distance travelled since the last tick."""
        n = len(states)
        fresh = np.isnan(self._shadow_z)
        prev = np.where(fresh, 0.0, self._shadow_z)
        moved = np.where(fresh, np.inf, np.hypot(*(xy_m - self._xy_m).T)) if n else np.zeros(0)
        sigma, d_corr = self._state_params(states)
        # new vehicles: rho = exp(-inf) = 0, so their first value is a fresh N(0, 1)
        z = next_shadowing_db(prev, moved, 1.0, d_corr, self.rng) if n else np.zeros(0)
        self._shadow_z, self._xy_m = np.asarray(z, dtype=float), np.array(xy_m, dtype=float)
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

    def _interference(self, g: np.ndarray, rsu_idx: np.ndarray, covered: np.ndarray) -> None:
        """Interference power density [W/Hz] on each covered vehicle's uplink (at its RSU) and downlink."""
        p = self.params
        ant = 10.0 ** (p.antenna_gain_db / 10.0)
        own = np.zeros(g.shape, dtype=bool)
        n = len(g)
        if n:
            own[np.flatnonzero(covered), rsu_idx[covered]] = True
        # uplink: at RSU r, the covered vehicles of the other cells
        tx_ul = (covered[:, None] & ~own) * (p.vehicle_tx_power_w / p.uplink_bandwidth_hz)
        at_rsu = p.interference_activity * ant * (tx_ul * g).sum(axis=0)
        # downlink: at vehicle v, every RSU but its own
        at_veh = p.interference_activity * ant * (p.rsu_tx_power_w / p.downlink_bandwidth_hz) * (g * ~own).sum(axis=1)
        i_psd = np.zeros((n, 2))
        if n:
            i_psd[covered, 0] = at_rsu[rsu_idx[covered]]
            i_psd[covered, 1] = at_veh[covered]
        self._i_psd = i_psd

    # ---- SNR and rates -----------------------------------------------------------------------------
    def interference_w_per_hz(self, vehicle_id: str, direction: Optional[str]) -> float:
        """Interference density [W/Hz] on the vehicle's link ('ul' at its RSU, 'dl' at the vehicle); 0 when
        off or no direction is given."""
        if not direction or not self.params.interference:
            return 0.0
        row = self._row(vehicle_id)
        return 0.0 if row is None else float(self._i_psd[row, 0 if direction == "ul" else 1])

    def los_state(self, vehicle_id: str, rsu: int) -> int:
        """The held LOS state of one link: 1 LOS, 0 not, -1 not drawn (or a model without LOS states)."""
        row = self._row(vehicle_id) if self._has_los and rsu >= 0 else None
        return -1 if row is None else int(self._los[row, rsu])

    def snr_linear(self, vehicle_id: str, gain_linear: float, tx_power_w: float, bandwidth_hz: float,
                   direction: Optional[str] = None) -> float:
        """(S)INR of a link; interference only when on and the direction ('ul'/'dl') is given."""
        return link.snr_linear(self.params.budget, tx_power_w, gain_linear, bandwidth_hz,
                               self.interference_w_per_hz(vehicle_id, direction))

    def rate_bps(self, bandwidth_hz: float, snr_linear: float) -> float:
        """The link's rate at its mean SNR: Shannon, ergodic Shannon under fading, or the MCS table's."""
        return link.rate_at_snr_bps(self.params.budget, bandwidth_hz, snr_linear)

    def rates_at_snr_bps(self, bandwidth_hz: float, snr_linear: np.ndarray) -> np.ndarray:
        """Rates at instantaneous SNRs (per-packet fading): Shannon or the MCS table's."""
        if self.params.rate_mode == "mcs":
            return mcs_rate_bps(bandwidth_hz, snr_linear, self.params.target_ber)
        return ch.shannon_rate_bps(bandwidth_hz, snr_linear)
