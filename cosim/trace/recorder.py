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


SPILLED = ("instants", "counters", "packets")       # the kinds that grow with time and vehicles
SPILL_ROWS = 1 << 17                                # records per spilled chunk (a Parquet row group)
_RECORD = {"instants": Instant, "counters": Counter, "packets": Packet}


class Trace:
    """Append-only lists of records. `level` gates the costly kinds: counters need 'spans',
    per-packet records need 'packets'.

    With `spill(folder)`, every SPILL_ROWS instants, counters or packets go to a Parquet chunk file there
    and leave memory, so a long run's memory stays flat; `count` and `rows` see spilled and kept records
    alike, and the exporters join the chunks (spans stay in memory: rounds read them back)."""

    def __init__(self, level: str = "spans"):
        if level not in LEVELS:
            raise ValueError(f"trace level {level!r}: expected one of {LEVELS}")
        self.level = level
        self.spans: list[Span] = []
        self.instants: list[Instant] = []
        self.counters: list[Counter] = []
        self.packets: list[Packet] = []
        self.spill_dir = None
        self.chunks: dict[str, list] = {name: [] for name in SPILLED}   # chunk files, in order
        self._spilled = dict.fromkeys(SPILLED, 0)

    def spill(self, folder) -> None:
        """Spill instants, counters and packets to chunk files in `folder` from now on."""
        self.spill_dir = folder

    def _flush(self, name: str) -> None:
        from .export import to_table      # pyarrow only where it is needed
        import pyarrow.parquet as pq

        rows = getattr(self, name)
        path = self.spill_dir / f".{name}-{len(self.chunks[name]):05d}.parquet"
        pq.write_table(to_table(rows, _RECORD[name]._fields), path, compression="zstd", store_schema=True)
        self.chunks[name].append(path)
        self._spilled[name] += len(rows)
        rows.clear()

    def count(self, name: str) -> int:
        """How many records of a kind ('spans', 'instants', 'counters', 'packets'), spilled ones included."""
        return len(getattr(self, name)) + self._spilled.get(name, 0)

    def rows(self, name: str):
        """Every record of a kind, in order: the spilled chunks read back, then those in memory."""
        if name in SPILLED:
            import pyarrow.parquet as pq

            record = _RECORD[name]
            for path in self.chunks[name]:
                table = pq.read_table(path)
                yield from map(record._make, zip(*(c.to_pylist() for c in table.columns)))
        yield from getattr(self, name)

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
        if len(self.instants) >= SPILL_ROWS and self.spill_dir is not None:
            self._flush("instants")

    def add_packets(self, rows) -> None:
        """Append per-packet records (tuples in PACKET_FIELDS order)."""
        self.packets.extend(rows)
        if len(self.packets) >= SPILL_ROWS and self.spill_dir is not None:
            self._flush("packets")

    def counter(self, t_s, actor, name, value) -> None:
        self.counters.append(Counter(float(t_s), actor, name, float(value)))
        if len(self.counters) >= SPILL_ROWS and self.spill_dir is not None:
            self._flush("counters")
