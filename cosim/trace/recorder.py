"""Flat, immutable trace records (namedtuples that load straight into pandas)."""
from __future__ import annotations

from typing import NamedTuple


class Span(NamedTuple):
    t_start_s: float
    t_end_s: float
    round: int
    actor: str
    kind: str          # compute.train, tx.ul, tx.dl, server.compute, aggregate, optimize, ...
    payload: str       # what moved or ran: model, activations, gradients, tokens, ...
    bytes: int
    packets: int
    retransmissions: int
    energy_j: float
    status: str        # ok | aborted | dropped | resent (a radio leg lost a packet; the rest went anew)
    cause: str         # '' when ok; coverage-lost, vehicle-left, deadline, handover, ...


class Instant(NamedTuple):
    t_s: float
    round: int
    actor: str
    kind: str          # coverage.enter, coverage.leave, handover, select, round.start, round.end, ...
    detail: str


class Counter(NamedTuple):
    t_s: float
    actor: str
    name: str          # distance_m, snr_db, rate_bps, queue_len, ...
    value: float


class Packet(NamedTuple):
    t_s: float
    actor: str
    transfer: int      # index of the transfer span in this run
    seq: int
    bytes: int
    attempts: int


SPAN_FIELDS = Span._fields
INSTANT_FIELDS = Instant._fields
COUNTER_FIELDS = Counter._fields
PACKET_FIELDS = Packet._fields

LEVELS = ("rounds", "spans", "packets")


class Trace:
    """Append-only lists of records. `level` gates the costly kinds: counters need 'spans',
    per-packet records need 'packets'."""

    def __init__(self, level: str = "spans"):
        if level not in LEVELS:
            raise ValueError(f"trace level {level!r}: expected one of {LEVELS}")
        self.level = level
        self.spans: list[Span] = []
        self.instants: list[Instant] = []
        self.counters: list[Counter] = []
        self.packets: list[Packet] = []

    @property
    def wants_counters(self) -> bool:
        return self.level != "rounds"

    @property
    def wants_packets(self) -> bool:
        return self.level == "packets"

    def span(self, t_start_s, t_end_s, round_, actor, kind, payload="", bytes_=0, packets=0,
             retransmissions=0, energy_j=0.0, status="ok", cause="") -> int:
        """Record a span; returns its index."""
        self.spans.append(Span(float(t_start_s), float(t_end_s), int(round_), actor, kind, payload,
                               int(bytes_), int(packets), int(retransmissions), float(energy_j), status, cause))
        return len(self.spans) - 1

    def instant(self, t_s, round_, actor, kind, detail="") -> None:
        self.instants.append(Instant(float(t_s), int(round_), actor, kind, detail))

    def counter(self, t_s, actor, name, value) -> None:
        self.counters.append(Counter(float(t_s), actor, name, float(value)))
