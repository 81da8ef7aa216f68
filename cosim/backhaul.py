"""The wired backhaul between RSUs and the edge server: a networkx graph with latency and capacity per link.

Delay model (pipelined, no contention): a payload of B bytes from an RSU to the server takes
    sum of the path's link latencies + 8 B / (smallest capacity on the path),
i.e. packets stream through the routers back to back, so the bottleneck link sets the serialization
time and every hop adds its propagation/switching latency once (store-and-forward of one MTU per hop
is below a microsecond at Gbit/s and is ignored). Concurrent flows do not slow each other down: the
backhaul is assumed provisioned well above the radio side. The path is the one of least total latency
(ties: fewest hops, then networkx's deterministic order).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import networkx as nx

SERVER = "server"


class Backhaul:
    """RSU -> server paths and their delays. Raises ValueError if an RSU has no path to the server."""

    CHECKPOINT_STATIC = True        # unchanged after it is built (cosim.checkpoint leaves it to the rebuilt run)

    def __init__(self, graph: nx.Graph, rsu_ids: Sequence[str]):
        self.graph = graph
        self._paths: dict[str, tuple[float, float, int]] = {}
        for rsu in rsu_ids:
            if rsu not in graph or not nx.has_path(graph, rsu, SERVER):
                raise ValueError(f"backhaul: RSU {rsu!r} has no path to {SERVER!r}")
            path = nx.shortest_path(graph, rsu, SERVER, weight="latency_s")
            hops = list(zip(path[:-1], path[1:]))
            latency = sum(graph.edges[a, b]["latency_s"] for a, b in hops)
            bottleneck = min(graph.edges[a, b]["capacity_bps"] for a, b in hops)
            self._paths[rsu] = (float(latency), float(bottleneck), len(hops))

    @classmethod
    def star(cls, rsu_ids: Sequence[str], latency_s: float = 1e-3, capacity_bps: float = 1e9) -> "Backhaul":
        """One link from every RSU straight to the server."""
        g = nx.Graph()
        g.add_node(SERVER)
        for rsu in rsu_ids:
            g.add_edge(rsu, SERVER, latency_s=float(latency_s), capacity_bps=float(capacity_bps))
        return cls(g, rsu_ids)

    @classmethod
    def from_links(cls, links: Iterable, rsu_ids: Sequence[str]) -> "Backhaul":
        """From link records with a, b, latency_s, capacity_bps (e.g. scenario BackhaulLinkConfig)."""
        return cls(_graph(links), rsu_ids)

    def latency_s(self, rsu: str) -> float:
        return self._paths[rsu][0]

    def hops(self, rsu: str) -> int:
        return self._paths[rsu][2]

    def delay_s(self, rsu: str, nbytes: int) -> float:
        """Time [s] for nbytes between `rsu` and the server (either direction)."""
        latency, bottleneck, _ = self._paths[rsu]
        return latency + 8.0 * float(nbytes) / bottleneck


def _graph(links: Iterable) -> nx.Graph:
    g = nx.Graph()
    g.add_node(SERVER)
    for link in links:
        g.add_edge(link.a, link.b, latency_s=float(link.latency_s), capacity_bps=float(link.capacity_bps))
    return g


def unreachable_rsus(config, rsu_ids: Sequence[str]) -> list[str]:
    """RSU ids without a path to the server in a BackhaulConfig's explicit links (for validation)."""
    g = _graph(config.links)
    return [r for r in rsu_ids if r not in g or not nx.has_path(g, r, SERVER)]


def build_backhaul(config, rsu_ids: Sequence[str]):
    """A Backhaul from a scenario BackhaulConfig, or None when it is disabled."""
    if not config.enabled:
        return None
    if config.links:
        return Backhaul.from_links(config.links, rsu_ids)
    return Backhaul.star(rsu_ids, config.latency_s, config.capacity_bps)
