"""ST-SFLora's system model, shared by its optimizer (cosim.optimizers.st_sflora) and its round process
(cosim.protocols.st_sflora): what a token upload weighs, what the server's step on it costs, and a
vehicle's predicted token phase.

SCHEMES.md "ST-SFLora" (arXiv 2605.26120): a vehicle sends [CLS, top-K, merge], K + 2 tokens of D
elements per sample (all N + 1 when K = N), S_m = n_m (K_m + 2) D q0 bits for its n_m samples of the round;
T_m = S_m / R_m, E_m = p_m T_m. The client is frozen, so it sends each sample's tokens once a round and
the server trains `local_epochs` passes over them (the first as the batches arrive).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from learning.tokens import tokens_sent

from .api import Candidate, Cost, RoundSnapshot
from .costs import CostModel, airtime_s, batch_sizes, tx_energy_j, uplink_rate_bps


@dataclass(frozen=True)
class TokenGeometry:
    """The client's output: N patch tokens of D elements at `bits` each, and the server's FLOPs per sample
    at a sequence of L tokens, c0 + c1 L + c2 L^2 (a transformer's FLOPs are quadratic in L: attention's
    scores and mixing grow with L^2, everything else with L; fitted exactly from three measured lengths)."""

    num_patches: int
    dim: int
    bits: int = 32
    server_flops: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def sample_bits(self, k: int) -> int:
        """Bits of one sample's sent tokens at K."""
        return tokens_sent(k, self.num_patches) * self.dim * self.bits

    def server_flops_per_sample(self, k: int) -> float:
        """The server's training FLOPs (forward and backward) for one sample sent at K."""
        return self.flops_at(tokens_sent(k, self.num_patches))

    def flops_at(self, length: int) -> float:
        """The server's training FLOPs for one sample of `length` tokens."""
        c0, c1, c2 = self.server_flops
        return c0 + c1 * length + c2 * length * length

    @classmethod
    def from_mapping(cls, m: Mapping) -> "TokenGeometry":
        return cls(int(m["num_patches"]), int(m["dim"]), int(m.get("bits", 32)),
                   tuple(float(x) for x in m.get("server_flops", (0.0, 0.0, 0.0))))

    def to_mapping(self) -> dict:
        return {"num_patches": self.num_patches, "dim": self.dim, "bits": self.bits,
                "server_flops": list(self.server_flops)}


def geometry(snap: RoundSnapshot) -> TokenGeometry:
    """The round's token geometry: snapshot extra["token_geometry"] (the scheme puts it there)."""
    if "token_geometry" not in snap.extra:
        raise ValueError("the snapshot has no extra['token_geometry'] ({num_patches, dim, bits, server_flops})")
    return TokenGeometry.from_mapping(snap.extra["token_geometry"])


def importance(snap: RoundSnapshot, vid: str, num_patches: int) -> list[float]:
    """The vehicle's uploaded token importance (its batch-mean CLS attention per patch token); before any
    upload, a flat prior 1 / (N + 1) per token."""
    got = snap.extra.get("importance", {}).get(vid)
    return list(got) if got is not None else [1.0 / (num_patches + 1)] * num_patches


def pipeline_s(upload_s: Sequence[float], server_s: Sequence[float], extra_server_s: float = 0.0) -> float:
    """When the last batch's server step ends: batches go up back to back, the server takes each when it has
    arrived and the previous one is done (one slot, no other vehicle), then `extra_server_s` more (the
    further epochs on the tokens already received)."""
    arrived = done = 0.0
    for up, srv in zip(upload_s, server_s):
        arrived += up
        done = max(arrived, done) + srv
    return done + extra_server_s


class TokenCost(CostModel):
    """A vehicle's token phase under a decision (its `tokens` K, None: all N; share or subchannel; power):
    each batch's tokens up, the server's step on each (at its sequence length), the further epochs on the
    server; energy p x airtime. The client's forward and the importance upload come before the plan and are
    not in it."""

    codec = None          # what goes up is the token selection (learning.tokens), not a split codec's output

    def cost(self, snap: RoundSnapshot, cand: Candidate, dec) -> Cost:
        geo = geometry(snap)
        k = geo.num_patches if dec.tokens is None else int(dec.tokens)
        rate = uplink_rate_bps(snap, cand, dec)
        learn = snap.learning
        sizes = batch_sizes(cand.num_samples, learn.batch_size, learn.local_epochs, snap.settings.get("batches_per_round"))
        first = sizes[:-(-cand.num_samples // learn.batch_size)]          # the first epoch's batches go up
        up = [airtime_s(b * geo.sample_bits(k), rate) for b in first]
        per_s = geo.server_flops_per_sample(k) / snap.server.flops_per_s
        srv = [b * per_s for b in sizes]
        latency = pipeline_s(up, srv[:len(first)], float(sum(srv[len(first):])))
        bits = sum(b * geo.sample_bits(k) for b in first)
        energy = tx_energy_j(dec.tx_power_w, bits, rate)
        return Cost(latency, energy, comm_s=airtime_s(bits, rate), server_s=float(sum(srv)), comm_energy_j=energy)
