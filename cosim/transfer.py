"""Per-packet transfers of real bytes over a link whose rate is piecewise constant.

The rate changes only at mobility ticks (and allocation changes), so within one interval the
packets that complete are computed at once: airtimes form a vector, completion times are the
interval start plus their running sum (sequential, as one-event-per-packet simulation adds them),
`searchsorted` finds how many finish before the interval ends, and the partial packet carries its
remaining bits on. One SimPy timeout covers the interval. The `explicit` mode runs the same
arithmetic one packet per event; it exists to prove the batched mode exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator, Optional, Protocol

import numpy as np
import simpy


class Link(Protocol):
    """A radio link as of the last tick. Extension points: rate_bps, abort_cause, tx_power_w."""

    tx_power_w: float

    def rate_bps(self) -> float: ...

    def abort_cause(self) -> Optional[str]: ...


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


PacketSink = Callable[[np.ndarray, np.ndarray, np.ndarray], None]  # (times_s, seq, bytes)


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
             on_packets: Optional[PacketSink] = None) -> Generator:
    """SimPy process body: send `nbytes` over `link`; returns a TransferOutcome.

    Aborts (status 'aborted') at the first interval start where `link.abort_cause()` names a cause.
    A simpy.Interrupt (e.g. the round deadline) ends it with status 'dropped' and the interrupt's cause.
    """
    if mode not in ("batched", "explicit"):
        raise ValueError(f"transfer mode {mode!r}: expected 'batched' or 'explicit'")
    sizes = packet_sizes_bytes(nbytes, mtu_bytes)
    state = _Progress(sizes.astype(float) * 8.0, on_packets, sizes)
    t_start = env.now
    interval = _batched_interval if mode == "batched" else _explicit_interval
    try:
        while not state.finished:
            cause = link.abort_cause()
            if cause:
                return state.outcome("aborted", cause, t_start, env.now, link.tx_power_w)
            rate = link.rate_bps()
            t_change = next_change_s()
            if rate <= 0.0:
                yield env.timeout(max(t_change - env.now, 0.0))
                continue
            yield from interval(env, state, rate, t_change)
        return state.outcome("ok", "", t_start, env.now, link.tx_power_w)
    except simpy.Interrupt as intr:
        return state.outcome("dropped", str(intr.cause or "interrupted"), t_start, env.now, link.tx_power_w)


class _Progress:
    """Bookkeeping shared by both modes: the next packet, the bits left of it, airtime spent."""

    def __init__(self, bits: np.ndarray, on_packets: Optional[PacketSink], sizes: np.ndarray):
        self.bits, self.sizes, self.on_packets = bits, sizes, on_packets
        self.next_packet = 0
        self.rem_bits: Optional[float] = None   # bits left of packet `next_packet`; None = untouched
        self.airtime_s = 0.0

    @property
    def finished(self) -> bool:
        return self.next_packet >= len(self.bits)

    def first_bits(self) -> float:
        return float(self.bits[self.next_packet]) if self.rem_bits is None else self.rem_bits

    def completions(self, t_from: float, rate: float, m: int) -> np.ndarray:
        """Completion times of the next m packets if sent back to back from t_from at `rate`.

        The running sum starts at t_from and adds one airtime at a time, exactly as SimPy's clock
        advances when each packet is its own timeout.
        """
        airtimes = self.bits[self.next_packet:self.next_packet + m] / rate
        airtimes[0] = self.first_bits() / rate
        return np.cumsum(np.concatenate(([t_from], airtimes)))[1:]

    def advance(self, rate: float, t_from: float, t_to: float, done: np.ndarray) -> None:
        """Move progress to time t_to, given the candidate completion times `done` from t_from."""
        i = self.next_packet
        k = int(np.searchsorted(done, t_to, side="right"))
        if k < len(done):                    # packet i + k is partly sent
            start = done[k - 1] if k else t_from
            full = float(self.bits[i + k]) if k else self.first_bits()
            self.rem_bits = full - rate * (t_to - start)
        else:
            self.rem_bits = None
        self.next_packet = i + k
        self.airtime_s += t_to - t_from
        if k and self.on_packets is not None:
            self.on_packets(done[:k], np.arange(i, i + k), self.sizes[i:i + k])

    def outcome(self, status, cause, t_start, t_end, power_w) -> TransferOutcome:
        delivered = int(self.sizes[: self.next_packet].sum())
        return TransferOutcome(status, cause, float(t_start), float(t_end), int(self.sizes.sum()), delivered,
                               self.next_packet, 0, float(power_w * self.airtime_s), float(self.airtime_s))


def _wait(env, state: _Progress, rate: float, t0: float, t_to: float, done: np.ndarray):
    """Wait until t_to, then book progress; on an interrupt book progress up to now and re-raise."""
    try:
        yield env.timeout(t_to - t0)
    except simpy.Interrupt:
        state.advance(rate, t0, env.now, done)
        raise
    state.advance(rate, t0, t_to, done)


def _batched_interval(env, state: _Progress, rate: float, t_change: float):
    """One timeout for all packets that complete before t_change (or for the payload's end)."""
    n, i, t0 = len(state.bits), state.next_packet, env.now
    horizon_bits = rate * max(t_change - t0, 0.0)
    # enough packets to reach past t_change: those that fit, plus the one that straddles it
    m = int(min(n - i, 2 + max(horizon_bits - state.first_bits(), 0.0) // state.bits[i]))
    done = state.completions(t0, rate, m)
    t_to = done[-1] if (i + m == n and done[-1] <= t_change) else t_change
    yield from _wait(env, state, rate, t0, t_to, done)


def _explicit_interval(env, state: _Progress, rate: float, t_change: float):
    """One timeout per packet; the same arithmetic as the batched mode."""
    while not state.finished:
        t0 = env.now
        done = state.completions(t0, rate, 1)
        t_to = min(done[0], t_change)
        yield from _wait(env, state, rate, t0, t_to, done)
        if t_to >= t_change:
            return
