"""Per-packet transfers of real bytes over a link whose rate is piecewise constant.

The link changes only at mobility ticks and allocation changes, so within one interval the packets
are computed at once: each packet's airtime (all its ARQ attempts, each at its own faded rate when
per-packet fading is on) forms a vector, completion times are the interval start plus its running
sum (sequential, as one-event-per-packet simulation adds them), `searchsorted` finds how many finish
before the interval ends, and the packet in flight carries its attempt and remaining bits on. One
SimPy timeout covers the interval (or the payload's end); an allocation change ends it early. The
`explicit` mode runs the same arithmetic one packet per event; it exists to prove the batched mode exact.

Randomness. A transfer owns its generator. Every packet takes a fixed number of uniforms, in packet
order (fading per attempt, then one ARQ uniform per attempt): the batched mode draws them in blocks,
the explicit mode one packet at a time, and numpy's `random((r, k))` equals r calls of `random(k)`,
so both modes see the same numbers. A packet's attempts are decided from the PER at the SNR of the
interval where it starts (a packet starting exactly at an interval's end starts in the next one);
each attempt's airtime uses the rate of the interval it is sent in.

ARQ. Attempt a of a packet fails when its uniform is below the PER (or, with fading, when the faded
SNR is under the outage SNR: such an attempt is sent at the outage SNR's rate and lost). A packet
that fails all 1 + max_retransmissions attempts is lost: the transfer aborts with cause 'arq-limit'
when its last attempt ends. Feedback (ACK/NACK) is instantaneous. Energy is tx power x time on air,
retransmissions included.

Times. The transfer keeps its own clock (the exact sums above) and schedules its wake-ups at those
absolute times, so SimPy's clock equals it bit for bit in both modes, and a wake-up at a mobility
tick comes after the tick (mobility ticks are urgent events).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generator, Optional

import numpy as np
import simpy
from scipy import special

from channel.per import packet_error_rate

from .clock import at

MODES = ("batched", "explicit")


class Link:
    """A radio link as seen by a transfer, as of the last change.

    Extension points: `rate_bps` and `abort_cause` (always); `snr_linear` (packet errors or fading),
    `rates_at_snr_bps` (per-packet fading) and `changed` (links whose allocation changes between ticks).
    """

    tx_power_w: float = 0.0

    def rate_bps(self) -> float:
        """The rate of an unfaded packet now [bit/s] (0: nothing can be sent until the next change)."""
        raise NotImplementedError

    def abort_cause(self) -> Optional[str]:
        """A cause ('coverage-lost', 'vehicle-left', 'handover', ...) if the transfer must stop now."""
        return None

    def snr_linear(self) -> float:
        """The mean (S)INR now, linear."""
        raise NotImplementedError(f"{type(self).__name__} has no SNR: packet errors and fading need one")

    def rates_at_snr_bps(self, snr_linear: np.ndarray) -> np.ndarray:
        """Rates [bit/s] at the given instantaneous SNRs, with the link's bandwidth now."""
        raise NotImplementedError(f"{type(self).__name__} has no rate function: per-packet fading needs one")

    def changed(self) -> Optional[simpy.Event]:
        """An event that fires at the link's next allocation change (None: only ticks change it)."""
        return None


@dataclass(frozen=True)
class PacketErrors:
    """What makes packets random: a PER model with ARQ, and fading per attempt.

    per_model: 'none', 'mcs' (the BLER of the CQI the attempt's SNR selects, at that SNR) or 'waterfall'
    (channel.per); per_params: keyword arguments of channel.per.packet_error_rate as (name, value) pairs. fading: 'none', 'rayleigh' or 'rician'
    (k_factor linear). outage_snr_linear: with fading, attempts whose faded SNR is below it fail.
    """

    per_model: str = "none"
    per_params: tuple = ()
    max_retransmissions: int = 3
    fading: str = "none"
    k_factor: Optional[float] = None
    outage_snr_linear: float = 0.0

    def __post_init__(self):
        if self.per_model not in ("none", "mcs", "waterfall"):
            raise ValueError(f"per_model {self.per_model!r}: expected none, mcs or waterfall")
        if self.fading not in ("none", "rayleigh", "rician"):
            raise ValueError(f"fading {self.fading!r}: expected none, rayleigh or rician")
        if self.fading == "rician" and (self.k_factor is None or self.k_factor < 0):
            raise ValueError(f"k_factor {self.k_factor!r}: expected a linear Rician K >= 0")
        if self.fading != "none" and not self.outage_snr_linear > 0:
            raise ValueError(f"outage_snr_linear {self.outage_snr_linear!r}: expected > 0 with fading")
        if self.max_retransmissions < 0:
            raise ValueError(f"max_retransmissions {self.max_retransmissions!r}: expected >= 0")

    @property
    def random(self) -> bool:
        return self.per_model != "none" or self.fading != "none"

    @property
    def attempts_max(self) -> int:
        return self.max_retransmissions + 1 if self.random else 1

    @property
    def fading_uniforms(self) -> int:
        """Uniforms per attempt for fading (Rayleigh: 1, by inversion; Rician: 2, one per quadrature)."""
        return {"none": 0, "rayleigh": 1, "rician": 2}[self.fading]

    @property
    def uniforms_per_packet(self) -> int:
        return self.attempts_max * (self.fading_uniforms + (self.per_model != "none"))


NO_ERRORS = PacketErrors()


@dataclass(frozen=True)
class TransferOutcome:
    status: str                 # ok | aborted | dropped
    cause: str
    t_start_s: float
    t_end_s: float
    bytes_total: int
    bytes_delivered: int
    packets_delivered: int
    retransmissions: int
    energy_j: float
    airtime_s: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


PacketSink = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]  # (times_s, seq, bytes, attempts)


def packet_sizes_bytes(nbytes: int, mtu_bytes: int) -> np.ndarray:
    """Sizes of the packets a payload is cut into (all MTU but the last)."""
    if nbytes <= 0:
        return np.zeros(0, dtype=np.int64)
    full, last = divmod(int(nbytes), int(mtu_bytes))
    sizes = np.full(full + (1 if last else 0), mtu_bytes, dtype=np.int64)
    if last:
        sizes[-1] = last
    return sizes


def transfer(env: simpy.Environment, link: Link, nbytes: int, mtu_bytes: int,
             next_change_s: Callable[[], float], mode: str = "batched",
             on_packets: Optional[PacketSink] = None, errors: PacketErrors = NO_ERRORS,
             rng: Optional[np.random.Generator] = None) -> Generator:
    """SimPy process body: send `nbytes` over `link`; returns a TransferOutcome.

    Aborts (status 'aborted') at the first interval start where `link.abort_cause()` names a cause, or
    with cause 'arq-limit' when a packet fails all its attempts. A simpy.Interrupt (e.g. the round
    deadline) ends it with status 'dropped' and the interrupt's cause, the packet in flight unsent.
    Raises ValueError for an unknown mode, or a missing rng when `errors` needs one.
    """
    if mode not in MODES:
        raise ValueError(f"transfer mode {mode!r}: expected 'batched' or 'explicit'")
    if errors.random and not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng {rng!r}: expected a numpy Generator (packet errors or fading are random)")
    st = _Progress(packet_sizes_bytes(nbytes, mtu_bytes), errors, rng, on_packets, env.now, mode == "batched")
    t_start = env.now
    interval = _batched_interval if mode == "batched" else _explicit_interval
    stale = 0
    try:
        while not st.finished:
            cause = link.abort_cause()
            if cause:
                return st.outcome("aborted", cause, t_start, env.now, link.tx_power_w)
            rate = link.rate_bps()
            snr = link.snr_linear() if errors.random else math.nan
            t_change = next_change_s()
            changed = link.changed() if hasattr(link, "changed") else None
            if t_change <= st.t:                # the change due now has not been applied yet
                stale += 1
                if stale > 2:
                    raise RuntimeError(f"next_change_s() = {t_change!r} is not after now = {st.t!r}")
                yield env.timeout(0.0)
                continue
            stale = 0
            if rate <= 0.0:
                yield from _idle(env, st, t_change, changed)
                continue
            yield from interval(env, st, _Interval(link, rate, snr), t_change, changed)
            if st.lost:
                return st.outcome("aborted", "arq-limit", t_start, env.now, link.tx_power_w)
        return st.outcome("ok", "", t_start, env.now, link.tx_power_w)
    except simpy.Interrupt as intr:
        return st.outcome("dropped", str(intr.cause or "interrupted"), t_start, env.now, link.tx_power_w)


# ---- the arithmetic both modes share --------------------------------------------------------------

@dataclass(frozen=True)
class _Interval:
    link: Link
    rate: float     # unfaded rate [bit/s]
    snr: float      # mean SNR (linear), for PER and fading


@dataclass
class _InFlight:
    """The packet being sent: its plan (attempts, lost, fading per attempt) and where it stands."""
    attempts: int
    lost: bool
    gain: Optional[np.ndarray]      # (L,) fading power gain per attempt, or None
    attempt: int                    # index of the attempt in progress
    rem_bits: float                 # bits left of that attempt


class _Uniforms:
    """Uniforms per packet, in packet order; batched mode draws blocks, explicit mode one packet at a time."""

    def __init__(self, rng, per_packet: int, n_packets: int, blocks: bool):
        self.rng, self.k, self.n_packets, self.blocks = rng, per_packet, n_packets, blocks
        self.buf = np.empty((0, per_packet))
        self.n = 0

    def rows(self, j: int, m: int) -> np.ndarray:
        need = j + m
        if need > self.n:
            target = min(max(need, self.n + 256), self.n_packets) if self.blocks else need
            if target > len(self.buf):
                grown = np.empty((min(max(target, 2 * len(self.buf)), self.n_packets), self.k))
                grown[: self.n] = self.buf[: self.n]
                self.buf = grown
            if self.blocks:
                self.buf[self.n:target] = self.rng.random((target - self.n, self.k))
                self.n = target
            else:
                while self.n < target:
                    self.buf[self.n] = self.rng.random(self.k)
                    self.n += 1
        return self.buf[j:need]


def _fading_gains(u: np.ndarray, errors: PacketErrors) -> np.ndarray:
    """Unit-mean power gains |h|^2 from uniforms, by inversion: u is (m, L, uniforms per attempt)."""
    if errors.fading == "rayleigh":
        # |h|^2 ~ Exp(1) for h ~ CN(0, 1) (Rappaport, Wireless Communications, 2nd ed., ch. 5)
        return -np.log1p(-u[..., 0])
    k = float(errors.k_factor)
    x, y = special.ndtri(np.maximum(u[..., 0], 2.0**-54)), special.ndtri(np.maximum(u[..., 1], 2.0**-54))
    # h = sqrt(K/(K+1)) + sqrt(1/(K+1)) CN(0, 1)  (Simon & Alouini 2005, 2.2.1.3)
    s = math.sqrt(0.5 / (k + 1.0))
    return (math.sqrt(k / (k + 1.0)) + s * x) ** 2 + (s * y) ** 2


class _Block:
    """Packets j..j+m-1 as planned for one interval: attempts, per-attempt rates and airtimes."""

    def __init__(self, j, attempts, lost, gain, rates, air, pkt_air, partial: Optional[_InFlight]):
        self.j, self.attempts, self.lost, self.gain = j, attempts, lost, gain
        self.rates, self.air, self.pkt_air, self.partial = rates, air, pkt_air, partial

    @property
    def m(self) -> int:
        return len(self.pkt_air)

    def truncate(self, m: int) -> "_Block":
        cut = (lambda a: None if a is None else a[:m])  # noqa: E731
        rates = self.rates if np.ndim(self.rates) == 0 else self.rates[:m]
        return _Block(self.j, cut(self.attempts), cut(self.lost), cut(self.gain), rates, self.air[:m],
                      self.pkt_air[:m], self.partial)

    @staticmethod
    def concat(blocks: list["_Block"]) -> "_Block":
        if len(blocks) == 1:
            return blocks[0]
        cat = (lambda name: None if getattr(blocks[0], name) is None  # noqa: E731
               else np.concatenate([getattr(b, name) for b in blocks]))
        rates = blocks[0].rates if np.ndim(blocks[0].rates) == 0 else cat("rates")
        return _Block(blocks[0].j, cat("attempts"), cat("lost"), cat("gain"), rates, cat("air"), cat("pkt_air"),
                      blocks[0].partial)


class _Progress:
    """Bookkeeping shared by both modes: the next packet, the one in flight, the clock, airtime spent."""

    def __init__(self, sizes: np.ndarray, errors: PacketErrors, rng, on_packets: Optional[PacketSink],
                 t_s: float, blocks: bool):
        self.sizes, self.bits, self.errors, self.on_packets = sizes, sizes.astype(float) * 8.0, errors, on_packets
        self.n = len(sizes)
        self.next_packet = 0                    # first packet not yet delivered
        self.cur: Optional[_InFlight] = None    # packet `next_packet` if it has started
        self.t = float(t_s)                     # the transfer's clock: exact sums of airtimes
        self.airtime_s = 0.0
        self.retransmissions = 0                # of packets finished (delivered or lost)
        self.lost = False
        self.uniforms = _Uniforms(rng, errors.uniforms_per_packet, self.n, blocks) if errors.random else None

    @property
    def finished(self) -> bool:
        return self.lost or self.next_packet >= self.n

    def first_bits(self) -> float:
        return float(self.bits[self.next_packet]) if self.cur is None else self.cur.rem_bits

    def block(self, iv: _Interval, j: int, m: int) -> _Block:
        """Plan packets j..j+m-1 (j may be the one in flight) in interval `iv`."""
        e, bits = self.errors, self.bits[j:j + m]
        partial = self.cur if j == self.next_packet else None
        if not e.random:                        # one attempt at the interval's rate
            air = bits / iv.rate
            if partial is not None:
                air[0] = partial.rem_bits / iv.rate
            return _Block(j, None, None, None, iv.rate, air[:, None], air, partial)
        L = e.attempts_max
        first = 1 if partial is not None else 0
        attempts, lost, gain = np.empty(m, dtype=np.int64), np.empty(m, dtype=bool), None
        if e.fading != "none":
            gain = np.empty((m, L))
        if first:
            attempts[0], lost[0] = partial.attempts, partial.lost
            if gain is not None:
                gain[0] = partial.gain
        if m > first:
            self._plan(iv, j + first, m - first, attempts[first:], lost[first:],
                       None if gain is None else gain[first:])
        if gain is None:
            rates = iv.rate
            air = np.broadcast_to(bits[:, None] / rates, (m, L)).copy()
        else:
            rates = iv.link.rates_at_snr_bps(np.maximum(iv.snr * gain, e.outage_snr_linear))
            air = bits[:, None] / rates
        air[np.arange(L)[None, :] >= attempts[:, None]] = 0.0
        if partial is not None:
            air[0, :partial.attempt] = 0.0
            air[0, partial.attempt] = partial.rem_bits / (rates if gain is None else rates[0, partial.attempt])
        pkt_air = air[:, 0].copy()
        for a in range(1, L):                   # sequential, the same for any block size
            pkt_air += air[:, a]
        return _Block(j, attempts, lost, gain, rates, air, pkt_air, partial)

    def _plan(self, iv: _Interval, j: int, m: int, attempts, lost, gain) -> None:
        """Attempts (and fading) of packets j..j+m-1 that start in interval `iv`, from their uniforms."""
        e, L = self.errors, self.errors.attempts_max
        u = self.uniforms.rows(j, m)
        nf = L * e.fading_uniforms
        fail = np.zeros((m, L), dtype=bool)
        snr = np.full((m, L), iv.snr)
        if gain is not None:
            gain[:] = _fading_gains(u[:, :nf].reshape(m, L, e.fading_uniforms), e)
            snr = snr * gain
            fail |= snr < e.outage_snr_linear
        if e.per_model != "none":
            per = packet_error_rate(snr, self.bits[j:j + m, None], e.per_model, **dict(e.per_params))
            fail |= u[:, nf:] < per
        ok = ~fail
        lost[:] = ~ok.any(axis=1)
        attempts[:] = np.where(lost, L, ok.argmax(axis=1) + 1)

    def book(self, blk: _Block, done: np.ndarray, t_from: float, t_to: float) -> None:
        """Move progress to t_to: deliver the packets done by then, keep the one in flight."""
        i = self.next_packet
        k = int(np.searchsorted(done, t_to, side="right"))
        if k:
            lost_hit = blk.lost is not None and bool(blk.lost[k - 1])
            n_ok = k - 1 if lost_hit else k
            if blk.attempts is not None:
                self.retransmissions += int((blk.attempts[:k] - 1).sum())
            if n_ok and self.on_packets is not None:
                att = blk.attempts[:n_ok] if blk.attempts is not None else np.ones(n_ok, dtype=np.int64)
                self.on_packets(done[:n_ok], np.arange(i, i + n_ok), self.sizes[i:i + n_ok], att)
            self.next_packet, self.cur, self.lost = i + n_ok, None, lost_hit
        if k < blk.m and not self.lost:
            start = done[k - 1] if k else t_from
            if start < t_to:                    # the packet has started: it is in flight
                self.cur = self._in_flight(blk, k, start, t_to)
            elif k:                             # it starts exactly now: it belongs to the next interval
                self.cur = None
        self.airtime_s += t_to - t_from
        self.t = t_to

    def _in_flight(self, blk: _Block, row: int, start: float, t_to: float) -> _InFlight:
        partial = blk.partial if row == 0 else None
        attempts = 1 if blk.attempts is None else int(blk.attempts[row])
        a0 = partial.attempt if partial is not None else 0
        a, tt = a0, start
        while a < attempts - 1 and tt + blk.air[row, a] <= t_to:
            tt += blk.air[row, a]
            a += 1
        full = partial.rem_bits if (partial is not None and a == a0) else float(self.bits[blk.j + row])
        rate = blk.rates if np.ndim(blk.rates) == 0 else blk.rates[row, a]
        rem = max(full - rate * (t_to - tt), 0.0)
        lost = False if blk.lost is None else bool(blk.lost[row])
        gain = None if blk.gain is None else blk.gain[row].copy()
        return _InFlight(attempts, lost, gain, a, rem)

    def outcome(self, status, cause, t_start, t_end, power_w) -> TransferOutcome:
        delivered = int(self.sizes[: self.next_packet].sum())
        retx = self.retransmissions + (self.cur.attempt if self.cur is not None else 0)
        return TransferOutcome(status, cause, float(t_start), float(t_end), int(self.sizes.sum()), delivered,
                               self.next_packet, retx, float(power_w * self.airtime_s), float(self.airtime_s))


def _until(env, t_s: float, changed: Optional[simpy.Event]):
    ev = at(env, t_s)
    return ev if changed is None else ev | changed


def _idle(env, st: _Progress, t_change: float, changed):
    """Nothing can be sent (rate 0): wait for the next change."""
    yield _until(env, t_change, changed)
    st.t = min(env.now, t_change)


def _wait(env, st: _Progress, blk: _Block, done: np.ndarray, t_from: float, t_to: float, changed):
    """Wait until t_to (or an allocation change), then book progress; on an interrupt book up to now."""
    try:
        yield _until(env, t_to, changed)
    except simpy.Interrupt:
        st.book(blk, done, t_from, max(env.now, t_from))
        raise
    st.book(blk, done, t_from, t_to if env.now >= t_to else env.now)


def _cumulative(t_from: float, pkt_air: np.ndarray) -> np.ndarray:
    return np.cumsum(np.concatenate(([t_from], pkt_air)))[1:]


def _batched_interval(env, st: _Progress, iv: _Interval, t_change: float, changed):
    """One timeout for all packets that complete before t_change (or for the payload's end)."""
    t0, i, n = st.t, st.next_packet, st.n
    horizon_bits = iv.rate * max(t_change - t0, 0.0)
    # enough packets to reach past t_change at the unfaded rate: those that fit, plus the straddler
    m = int(min(n - i, 2 + max(horizon_bits - st.first_bits(), 0.0) // st.bits[i]))
    blocks, dones, j, t_last = [], [], i, t0
    while True:
        blk = st.block(iv, j, m)
        done = _cumulative(t_last, blk.pkt_air)
        if blk.lost is not None and blk.lost.any():
            f = int(np.argmax(blk.lost)) + 1     # nothing after a lost packet is sent
            blk, done = blk.truncate(f), done[:f]
            blocks.append(blk), dones.append(done)
            end = True
            break
        blocks.append(blk), dones.append(done)
        j += m
        end = j >= n
        if end or done[-1] > t_change:
            break
        t_last, m = done[-1], min(n - j, 2 * m)
    blk = _Block.concat(blocks)
    done = dones[0] if len(dones) == 1 else np.concatenate(dones)
    t_to = done[-1] if (end and done[-1] <= t_change) else t_change
    yield from _wait(env, st, blk, done, t0, t_to, changed)


def _explicit_interval(env, st: _Progress, iv: _Interval, t_change: float, changed):
    """One timeout per packet; the same arithmetic as the batched mode."""
    while not st.finished:
        if changed is not None and changed.triggered:
            return
        t0 = st.t
        blk = st.block(iv, st.next_packet, 1)
        done = _cumulative(t0, blk.pkt_air)
        t_to = min(done[0], t_change)
        yield from _wait(env, st, blk, done, t0, t_to, changed)
        if st.t >= t_change or (changed is not None and changed.triggered):
            return
