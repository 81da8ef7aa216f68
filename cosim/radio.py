"""The radio side of the World: every link's gain per tick (vectorized), SNR and rate, bandwidth pools.

Links are tracked per vehicle-RSU pair while the vehicle is within the RSU's radius (every pair with
interference on); a link out of range is forgotten (its correlations have long decayed: 10-50 m). Per tick,
for the tracked links in row order (vehicles in snapshot order, RSUs in index order), draws from the
"channel" stream in this order:
  1. LOS state (models with one): a standard normal per link, an AR(1) step along the distance its vehicle
     travelled (correlation exp(-dd / d_corr), `channel.conditions.LOS_CORRELATION_M`); the link is LOS
     while Phi(normal) < P_LOS(d) (TR 38.901 Sec. 7.6.3.3), else NLOSv (V2V models) or NLOS (UMi); a link
     through a building (`channel.buildings`) is NLOS;
  2. shadowing (if on): a unit normal per link, the same AR(1) with the decorrelation distance of the link's
     state, scaled by that state's sigma (`channel.shadowing.SHADOWING`);
  3. NLOSv blockage (V2V models): a standard normal for each link that has just become NLOSv, held while it
     stays NLOSv, so its loss max(0, mu(d) + sigma z) follows the distance.
`channel.models.link_gain_linear` then computes the gains from the held state without drawing; the 'seed'
model is computed in linear form (h0 d^-gamma), which the registry would round through dB, so that the seed
papers' numbers stay bit-exact.

Interference (optional, reuse 1): every covered vehicle of another cell (uplink) or every other RSU
(downlink) transmits with probability `activity`, its power spread evenly over the band (an RSU's downlink
has that density on its own links too: `channel.link.downlink_power_w`), so its density adds to the noise's.
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
from channel.conditions import LOS, LOS_CORRELATION_M, NLOS, NLOSV, los_from_latent
from channel.fading import power_fading
from channel.link import RSU_NOISE_FIGURE_DB, VEHICLE_NOISE_FIGURE_DB
from channel.rate import mcs_rate_bps
from channel.shadowing import SHADOWING, shadowing_params
from channel.v2v import DEFAULT_ANTENNA_HEIGHT_M, RSU_ANTENNA_HEIGHT_M

from .rng import RngStreams
from .transfer import NO_ERRORS, PacketErrors

UNTRACKED = -1


@dataclass(frozen=True)
class RadioParams:
    """What the per-tick channel evaluation and the transfers need (defaults: the seed model, ideal packets)."""

    h0: float
    pathloss_exponent: float
    noise_dbm_per_hz: float
    rsu_noise_figure_db: float = RSU_NOISE_FIGURE_DB          # uplink receiver
    vehicle_noise_figure_db: float = VEHICLE_NOISE_FIGURE_DB  # downlink receiver
    model: str = "seed"
    carrier_hz: float = 5.9e9
    model_params: tuple = ()                  # (name, value) pairs for channel.models
    antenna_gain_db: float = 0.0              # vehicle + RSU antenna gains
    vehicle_height_m: float = DEFAULT_ANTENNA_HEIGHT_M
    rsu_height_m: float = RSU_ANTENNA_HEIGHT_M
    los_correlation_m: Optional[float] = None           # None: channel.conditions.LOS_CORRELATION_M
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
    buildings: object = field(default=None, compare=False)              # channel.buildings.Buildings or None
    backhaul: object = field(default=None, compare=False)               # cosim.backhaul.Backhaul or None
    streams: Optional[RngStreams] = field(default=None, compare=False)  # for the "channel" stream

    @cached_property
    def budget(self) -> link.LinkBudget:
        """The settings a link's rate depends on besides gain, power and bandwidth."""
        return link.LinkBudget(self.noise_dbm_per_hz, self.rsu_noise_figure_db, self.vehicle_noise_figure_db,
                               self.antenna_gain_db, self.rate_mode, self.target_ber, self.fading, self.fading_mode,
                               self.k_factor)

    def downlink_power_w(self, bandwidth_hz: float) -> float:
        """What the RSU sends on `bandwidth_hz` of its downlink band (constant power spectral density)."""
        return link.downlink_power_w(self.rsu_tx_power_w, self.downlink_bandwidth_hz, bandwidth_hz)

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


def _ar1(prev: np.ndarray, step_m: np.ndarray, d_corr_m, rng: np.random.Generator) -> np.ndarray:
    """One unit-variance AR(1) step along `step_m` metres (channel.shadowing.next_shadowing_db with sigma 1,
    without its argument checks: this runs for every tracked link every tick); NaN `prev` (a new link) with
    an infinite step gives a fresh N(0, 1)."""
    rho = np.exp(-step_m / d_corr_m)
    # Gudmundson 1991 correlation as a first-order autoregression along travelled distance
    return np.where(rho > 0.0, rho * prev, 0.0) + np.sqrt(1.0 - rho * rho) * rng.standard_normal(len(prev))


class RadioState:
    """Per-link radio state (LOS state, shadowing, blockage, interference) kept across ticks, and the pools.

    The state is held in (vehicles, RSUs) arrays aligned with the rows of the last tick's vehicles and carried
    over to the next tick's rows (one gather, not a Python loop over vehicles): a vehicle keeps its links'
    state while it is present and in range, and loses it when it leaves.
    """

    def __init__(self, env: simpy.Environment, params: RadioParams, n_rsus: int, step_s: float = 1.0,
                 rsu_xy_m: Optional[np.ndarray] = None, track_radius_m: float = np.inf):
        self.env, self.params, self.n_rsus, self.step_s = env, params, n_rsus, float(step_s)
        self.track_radius_m = float(track_radius_m)
        self.rsu_xy_m = None if rsu_xy_m is None else np.asarray(rsu_xy_m, dtype=float)
        if params.buildings is not None and self.rsu_xy_m is None:
            raise ValueError("buildings need the RSUs' positions (rsu_xy_m) to test each link's line of sight")
        self.t_tick_s = float(env.now)       # SimPy's time of the last evaluation (the last tick)
        self._rng: Optional[np.random.Generator] = None
        model = models.get_model(params.model)
        self._has_los = model.los_probability is not None
        self._v2v = params.model.startswith("tr37885")
        self._not_los = NLOSV if self._v2v else NLOS
        self._los_corr_m = (params.los_correlation_m if params.los_correlation_m is not None
                            else LOS_CORRELATION_M.get(params.model, (np.inf, ""))[0])
        self._ids: tuple[str, ...] = ()
        self._index: Optional[dict[str, int]] = None                  # id -> row, built when asked
        k = n_rsus
        self._state = np.full((0, k), UNTRACKED, dtype=np.int8)       # per link: LOS / NLOSV / NLOS, or untracked
        self._los_z = np.zeros((0, k))                                # the LOS state's latent normal
        self._shadow_z = np.zeros((0, k))                             # unit-variance shadowing
        self._block_z = np.zeros((0, k))                              # NLOSv blockage normal (NaN: not NLOSv)
        self._xy_m = np.zeros((0, 2))                                 # where the links were last stepped
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

    # ---- inspection (tests, notebooks, positions.parquet) ------------------------------------------
    def _row_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = dict(zip(self._ids, range(len(self._ids))))
        return self._index

    def _row(self, vehicle_id: str) -> Optional[int]:
        return self._row_index().get(vehicle_id)

    @property
    def states(self) -> dict[str, np.ndarray]:
        """Link state per vehicle present and RSU (channel.conditions LOS / NLOSV / NLOS; -1 untracked)."""
        return {v: self._state[i].copy() for i, v in enumerate(self._ids)}

    @property
    def shadow_z(self) -> dict[str, np.ndarray]:
        """Unit-variance shadowing per vehicle present and RSU (NaN: untracked)."""
        return {v: self._shadow_z[i].copy() for i, v in enumerate(self._ids)}

    def link_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the (vehicles, RSUs) link state in the last tick's row order: 'state', 'los_z' (the LOS
        state's latent normal), 'shadow_z' (unit-variance shadowing), 'block_z' (NLOSv blockage normal)."""
        return {"state": self._state.copy(), "los_z": self._los_z.copy(), "shadow_z": self._shadow_z.copy(),
                "block_z": self._block_z.copy()}

    def serving_states(self, rsu_idx: np.ndarray) -> np.ndarray:
        """Each vehicle's state on its link to rsu_idx[i] (-1 when uncovered or the model has no states)."""
        n = len(rsu_idx)
        out = np.full(n, UNTRACKED, dtype=np.int8)
        if not self._has_los or len(self._state) != n:
            return out
        has = rsu_idx >= 0
        out[has] = self._state[np.flatnonzero(has), rsu_idx[has]]
        return out

    # ---- per tick ---------------------------------------------------------------------------------
    def _carry(self, ids: tuple[str, ...], prev: Optional[tuple]) -> None:
        """Re-align the state with this tick's vehicles. `prev` = (old_ids, prev_rows), prev_rows[i] being
        the row of ids[i] in old_ids or -1: the World's mapping, used when old_ids are the ids this state
        holds (else each id is looked up)."""
        if ids == self._ids:
            return
        n, k = len(ids), self.n_rsus
        prev_rows = prev[1] if prev is not None and prev[0] is self._ids else None
        if prev_rows is None:
            prev_rows = np.fromiter(map(self._row_index().get, ids, repeat(-1)), dtype=int, count=n)
        has = prev_rows >= 0
        src = prev_rows[has]

        def gather(old, fill, shape, dtype=float):
            new = np.full(shape, fill, dtype=dtype)
            new[has] = old[src]
            return new
        self._state = gather(self._state, UNTRACKED, (n, k), np.int8)
        self._los_z = gather(self._los_z, np.nan, (n, k))
        self._shadow_z = gather(self._shadow_z, np.nan, (n, k))
        self._block_z = gather(self._block_z, np.nan, (n, k))
        self._xy_m = gather(self._xy_m, np.nan, (n, 2))
        self._i_psd = gather(self._i_psd, 0.0, (n, 2))
        self._ids, self._index = ids, None

    def advance(self, ids, xy_m: np.ndarray, dist_m: np.ndarray, prev: Optional[tuple] = None) -> None:
        """Step every tracked link's state to this tick (once per tick, before `path_gains` / `gains`).
        `prev` (optional): (the previous call's ids, each vehicle's row in them or -1), see `_carry`."""
        p = self.params
        self.t_tick_s = float(self.env.now)
        if p.ideal_seed:                        # no link state at all
            return
        ids = tuple(ids)
        self._carry(ids, prev)
        xy_m = np.asarray(xy_m, dtype=float)
        track = np.ones(dist_m.shape, dtype=bool) if p.interference else dist_m <= self.track_radius_m
        state = self._state
        gone = ~track & (state != UNTRACKED)             # out of range since the last tick: forgotten
        if gone.any():
            for held in (self._los_z, self._shadow_z, self._block_z):
                held[gone] = np.nan
            state[gone] = UNTRACKED
        rows, cols = np.nonzero(track)
        with np.errstate(invalid="ignore"):     # a new vehicle (NaN position): a fresh draw
            moved = np.where(np.isnan(self._xy_m[:, 0]), np.inf, np.hypot(*(xy_m - self._xy_m).T))
        self._xy_m = xy_m.copy()
        if not len(rows):
            return
        old = state[rows, cols]
        step = np.where(old == UNTRACKED, np.inf, moved[rows])      # a new link: a fresh draw
        if self._has_los:                       # 1. the LOS state, spatially consistent
            z = _ar1(self._los_z[rows, cols], step, self._los_corr_m, self.rng)
            self._los_z[rows, cols] = z
            p_los = models.los_probability(p.model, dist_m[rows, cols])
            new = np.where(los_from_latent(z, p_los), LOS, self._not_los).astype(np.int8)
            if p.buildings is not None:
                new[p.buildings.blocked(xy_m[rows], self.rsu_xy_m[cols])] = NLOS
        else:
            new = np.full(len(rows), LOS, dtype=np.int8)
        if p.shadowing:                         # 2. shadowing, with the decorrelation of the link's state
            _, d_corr = self._state_params(new)
            self._shadow_z[rows, cols] = _ar1(self._shadow_z[rows, cols], step, d_corr, self.rng)
        if self._v2v:                           # 3. the blockage normal of links that have just become NLOSv
            bz = self._block_z[rows, cols]
            bz[new != NLOSV] = np.nan
            fresh = (new == NLOSV) & (old != NLOSV)
            bz[fresh] = self.rng.standard_normal(int(fresh.sum()))
            self._block_z[rows, cols] = bz
        state[rows, cols] = new

    def evaluate(self, ids, xy_m: np.ndarray, dist_m: np.ndarray, rsu_idx: np.ndarray,
                 prev: Optional[tuple] = None) -> np.ndarray:
        """`advance` then `gains`: the tick's gain (linear) of each vehicle's link to its RSU (0 uncovered)."""
        self.advance(ids, xy_m, dist_m, prev)
        return self.gains(dist_m, rsu_idx)

    def gains(self, dist_m: np.ndarray, rsu_idx: np.ndarray) -> np.ndarray:
        """Gain (linear) of each vehicle's link to its RSU (0 when uncovered), from the state `advance` held;
        with interference on, also each link's interference density."""
        p = self.params
        n = len(rsu_idx)
        rows = np.arange(n)
        covered = rsu_idx >= 0
        d_assoc = np.where(covered, dist_m[rows, np.maximum(rsu_idx, 0)] if n else 0.0, np.inf)
        if p.ideal_seed:                        # the seed papers' channel, exactly as they compute it
            return np.where(covered, ch.seed_gain_linear(np.minimum(d_assoc, 1e12), p.h0, p.pathloss_exponent), 0.0)
        if p.interference:                      # every vehicle to every RSU (interference needs them)
            g = self._link_gains(dist_m, np.ones(dist_m.shape, dtype=bool))
            self._interference(g, rsu_idx, covered)
            return np.where(covered, g[rows, np.maximum(rsu_idx, 0)] if n else 0.0, 0.0)
        want = np.zeros(dist_m.shape, dtype=bool)
        want[np.flatnonzero(covered), rsu_idx[covered]] = True
        return self._link_gains(dist_m, want)[rows, np.maximum(rsu_idx, 0)] * covered if n else np.zeros(0)

    def path_gains(self, dist_m: np.ndarray, in_range: np.ndarray) -> np.ndarray:
        """(n, k) gain (linear: path loss with the link's state and shadowing, no fading) of every in-range
        link, 0 elsewhere: what association by strongest received power ranks."""
        g = np.zeros(dist_m.shape)
        if not in_range.any():
            return g
        if self.params.ideal_seed:
            g[in_range] = ch.seed_gain_linear(dist_m[in_range], self.params.h0, self.params.pathloss_exponent)
            return g
        return self._link_gains(dist_m, in_range)

    def _state_params(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shadowing sigma [dB] and decorrelation [m] per link, from its state."""
        p = self.params
        n = len(states)
        if p.shadowing_sigma_db is not None and p.shadowing_decorrelation_m is not None:
            return np.full(n, p.shadowing_sigma_db), np.full(n, p.shadowing_decorrelation_m)
        if self._has_los:
            sigma, d_corr = np.zeros(n), np.ones(n)
            for code, name in ((LOS, "los"), (NLOSV, "nlosv"), (NLOS, "nlos")):
                if (p.model, name) in SHADOWING:
                    sp = SHADOWING[(p.model, name)]
                    sigma[states == code], d_corr[states == code] = sp.sigma_db, sp.decorrelation_m
        else:
            sp = shadowing_params(p.model, "any")
            sigma, d_corr = np.full(n, sp.sigma_db), np.full(n, sp.decorrelation_m)
        if p.shadowing_sigma_db is not None:
            sigma = np.full(n, p.shadowing_sigma_db)
        if p.shadowing_decorrelation_m is not None:
            d_corr = np.full(n, p.shadowing_decorrelation_m)
        return sigma, d_corr

    def _link_gains(self, dist_m: np.ndarray, want: np.ndarray) -> np.ndarray:
        """(n, k) gains of the links in `want` (tracked ones), 0 elsewhere, from the held state."""
        p = self.params
        g = np.zeros(dist_m.shape)
        r, c = np.nonzero(want)
        if not len(r):
            return g
        d_m, state = dist_m[r, c], self._state[r, c]
        shadow_db = None
        if p.shadowing:
            sigma, _ = self._state_params(state)
            shadow_db = sigma * self._shadow_z[r, c]
        if p.model == "seed":
            gl = ch.seed_gain_linear(d_m, p.h0, p.pathloss_exponent)
            g[r, c] = gl if shadow_db is None else gl * 10.0 ** (-shadow_db / 10.0)
            return g
        kw = dict(p.model_params)
        if self._has_los:
            kw["los"] = state == LOS
        if self._v2v:
            kw.update(blockage_z=self._block_z[r, c], tx_height_m=p.vehicle_height_m, rx_height_m=p.rsu_height_m)
        elif p.model == "tr38901_umi":
            kw.update(bs_height_m=p.rsu_height_m, ut_height_m=p.vehicle_height_m)
        if p.model in models.BUILDING_MODELS and p.buildings is not None:
            kw["building_nlos"] = state == NLOS
        if shadow_db is not None:
            kw["shadowing_db"] = shadow_db
        g[r, c] = models.link_gain_linear(p.model, d_m, p.carrier_hz, None, **kw)
        return g

    def _interference(self, g: np.ndarray, rsu_idx: np.ndarray, covered: np.ndarray) -> None:
        """Interference power density [W/Hz] on each covered vehicle's uplink (at its RSU) and downlink."""
        p = self.params
        ant = 10.0 ** (p.antenna_gain_db / 10.0)
        own = np.zeros(g.shape, dtype=bool)
        n = len(g)
        if n:
            own[np.flatnonzero(covered), rsu_idx[covered]] = True
        # uplink: at RSU r, the covered vehicles of the other cells, each power spread over the band
        tx_ul = (covered[:, None] & ~own) * (p.vehicle_tx_power_w / p.uplink_bandwidth_hz)
        at_rsu = p.interference_activity * ant * (tx_ul * g).sum(axis=0)
        # downlink: at vehicle v, every RSU but its own, at the density the serving RSU also sends with
        at_veh = p.interference_activity * ant * (p.rsu_tx_power_w / p.downlink_bandwidth_hz) * (g * ~own).sum(axis=1)
        i_psd = np.zeros((n, 2))
        if n:
            i_psd[covered, 0] = at_rsu[rsu_idx[covered]]
            i_psd[covered, 1] = at_veh[covered]
        self._i_psd = i_psd

    # ---- SNR and rates -----------------------------------------------------------------------------
    def interference_w_per_hz(self, vehicle_id: str, direction: str) -> float:
        """Interference density [W/Hz] on the vehicle's link ('ul' at its RSU, 'dl' at the vehicle); 0 when off."""
        if not self.params.interference:
            return 0.0
        row = self._row(vehicle_id)
        return 0.0 if row is None else float(self._i_psd[row, 0 if direction == "ul" else 1])

    def link_state(self, vehicle_id: str, rsu: int) -> int:
        """The held state of one link (channel.conditions LOS / NLOSV / NLOS); -1 when untracked or the model
        has no states."""
        row = self._row(vehicle_id) if self._has_los and rsu >= 0 else None
        return -1 if row is None else int(self._state[row, rsu])

    def snr_linear(self, vehicle_id: str, gain_linear: float, tx_power_w: float, bandwidth_hz: float,
                   direction: str) -> float:
        """(S)INR of a link in `direction` ('ul': the RSU receives, 'dl': the vehicle does)."""
        return link.snr_linear(self.params.budget, direction, tx_power_w, gain_linear, bandwidth_hz,
                               self.interference_w_per_hz(vehicle_id, direction))

    def rate_bps(self, bandwidth_hz: float, snr_linear: float) -> float:
        """The link's rate at its mean SNR: Shannon, ergodic Shannon under fading, or the MCS table's."""
        return link.rate_at_snr_bps(self.params.budget, bandwidth_hz, snr_linear)

    def rates_at_snr_bps(self, bandwidth_hz: float, snr_linear: np.ndarray) -> np.ndarray:
        """Rates at instantaneous SNRs (per-packet fading): Shannon or the MCS table's."""
        if self.params.rate_mode == "mcs":
            return mcs_rate_bps(bandwidth_hz, snr_linear, self.params.target_ber)
        return ch.shannon_rate_bps(bandwidth_hz, snr_linear)
