"""Road geometry from a SUMO net (sumolib): RSU placement along roads and a vehicle's remaining path."""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Sequence

import networkx as nx
import numpy as np
import sumolib

from .errors import MobilityInputError, malformed_xml, one_line, require_file, xml_root_tag
from .rsu import RsuLayout

__all__ = ["load_net", "longest_path_edges", "path_shape_xy", "rsus_along_path", "remaining_path_xy"]


def load_net(net_file: str | Path) -> sumolib.net.Net:
    """The SUMO net with internal (junction) lanes; cached per file and modification time.

    Raises MobilityFileNotFoundError / MobilityInputError naming the file.
    """
    path = require_file(net_file, "net file").resolve()
    return _load_net_cached(str(path), os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _load_net_cached(path: str, _mtime_ns: int) -> sumolib.net.Net:
    tag = xml_root_tag(Path(path))
    if tag != "net":
        raise MobilityInputError(path, f"not a SUMO net (root element <{tag}>, expected <net>)")
    try:
        return sumolib.net.readNet(path, withInternal=True)
    except Exception as e:  # sumolib raises SAX errors and assorted KeyErrors on broken nets
        broken = malformed_xml(path)        # sumolib may trip on a missing attribute before the break
        if broken is not None:
            raise MobilityInputError(path, f"malformed XML ({broken})") from None
        raise MobilityInputError(path, f"unreadable SUMO net ({type(e).__name__}: {one_line(e)})") from None


def _net_path(net: sumolib.net.Net | str | Path) -> tuple[sumolib.net.Net, str]:
    if isinstance(net, (str, Path)):
        return load_net(net), str(net)
    return net, "<net>"


class PathTooShortError(ValueError):
    """The path is shorter than where the first RSU would go."""

    def __init__(self, total_m: float, start_m: float):
        self.total_m, self.start_m = total_m, start_m
        super().__init__(total_m, start_m)      # args as given: SimPy re-raises as type(e)(*e.args)

    def __str__(self) -> str:
        return f"path of {self.total_m:.1f} m is too short for a first RSU at {self.start_m} m"


@contextlib.contextmanager
def _net_geometry(net_name: str):
    """MobilityInputError naming the net for what sumolib raises on a net it read but cannot build shapes of
    (it computes them lazily: an edge between junctions the net lacks, a lane without a shape)."""
    try:
        yield
    except (MobilityInputError, PathTooShortError):
        raise
    except (TypeError, ValueError, IndexError, KeyError, AttributeError, ZeroDivisionError) as e:
        raise MobilityInputError(net_name, f"unusable SUMO net geometry ({type(e).__name__}: {one_line(e)})") \
            from None


def longest_path_edges(net: sumolib.net.Net | str | Path) -> list[str]:
    """Edge ids of the longest shortest path (by length) between any two junctions of the net, over the
    edges passenger cars may use (an OSM net's cycleways and footpaths are not roads for RSUs).

    Exact: Dijkstra from every junction (networkx), O(N E log N); ties go to the smallest (from, to)
    junction ids, so the choice is deterministic. Internal (junction) edges are ignored.
    """
    net, net_name = _net_path(net)
    g = nx.DiGraph()
    with _net_geometry(net_name):
        for e in net.getEdges(withInternal=False):
            if not e.getLanes() or not e.allows("passenger"):
                continue
            u, v, length = e.getFromNode().getID(), e.getToNode().getID(), e.getLength()
            if u != v and (not g.has_edge(u, v) or g[u][v]["weight"] > length):
                g.add_edge(u, v, weight=length, edge_id=e.getID())
    best: tuple[float, str, str] | None = None
    for u in sorted(g.nodes):
        dist = nx.single_source_dijkstra_path_length(g, u)
        for v in sorted(dist):
            if best is None or dist[v] > best[0] + 1e-9:
                best = (dist[v], u, v)
    if best is None or best[0] <= 0.0:
        raise MobilityInputError(net_name, "no road to place RSUs along (expected edges with lanes that passenger "
                                           "cars may use, or name the edges in rsus.placement.edges)")
    nodes = nx.dijkstra_path(g, best[1], best[2])
    return [g[a][b]["edge_id"] for a, b in zip(nodes[:-1], nodes[1:])]


def path_shape_xy(net: sumolib.net.Net | str | Path, edge_ids: Sequence[str]) -> np.ndarray:
    """(m, 2) polyline of the edges' shapes walked in order (repeated joints dropped).

    Raises MobilityInputError naming the edge id and the net file for an unknown edge.
    """
    net, net_name = _net_path(net)
    pts: list[tuple[float, float]] = []
    for eid in edge_ids:
        if not net.hasEdge(eid):
            raise MobilityInputError(net_name, f"edge {eid!r} not found in the net")
        if not net.getEdge(eid).getLanes():
            raise MobilityInputError(net_name, f"edge {eid!r} has no lanes (expected a road with a shape)")
        with _net_geometry(net_name):
            shape = net.getEdge(eid).getShape()
        for p in shape:
            if not pts or np.hypot(p[0] - pts[-1][0], p[1] - pts[-1][1]) > 1e-9:
                pts.append((float(p[0]), float(p[1])))
    xy = np.asarray(pts, dtype=float).reshape(-1, 2)
    if not np.isfinite(xy).all():
        raise MobilityInputError(net_name, f"edges {list(edge_ids)!r} have non-finite shape coordinates")
    return xy


def _points_at(poly_m: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points at arc lengths `s_m` along a polyline and the unit tangent there."""
    seg = np.diff(poly_m, axis=0)
    seg_len = np.sqrt((seg ** 2).sum(axis=1))
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    k = np.clip(np.searchsorted(cum, s_m, side="right") - 1, 0, len(seg) - 1)
    frac = (s_m - cum[k]) / np.where(seg_len[k] > 0, seg_len[k], 1.0)
    tangent = seg[k] / np.where(seg_len[k] > 0, seg_len[k], 1.0)[:, None]
    return poly_m[k] + frac[:, None] * seg[k], tangent


def rsus_along_path(net_file: str | Path, spacing_m: float, radius_m: float, edge_ids: Sequence[str] | None = None,
                    first_m: float | None = None, lateral_offset_m: float = 0.0) -> RsuLayout:
    """RSUs "rsu0", "rsu1", ... every `spacing_m` along the edges' shapes walked in order.

    The default path is `longest_path_edges`. The first RSU sits `first_m` (default spacing_m / 2) from
    the path's start; `lateral_offset_m` > 0 moves RSUs to the left of the direction of the path.
    Raises MobilityInputError naming the id and the net file for an unknown edge.
    """
    if spacing_m <= 0:
        raise ValueError(f"spacing_m must be > 0, got {spacing_m}")
    if radius_m <= 0:
        raise ValueError(f"radius_m must be > 0, got {radius_m}")
    net = load_net(net_file)
    try:
        ids = list(edge_ids) if edge_ids is not None else longest_path_edges(net)
        poly = path_shape_xy(net, ids)
    except MobilityInputError as e:
        raise MobilityInputError(net_file, e.what) from None
    total_m = float(np.sqrt((np.diff(poly, axis=0) ** 2).sum(axis=1)).sum()) if len(poly) > 1 else 0.0
    start_m = spacing_m / 2.0 if first_m is None else first_m
    if total_m <= 0.0 or start_m > total_m:
        raise PathTooShortError(total_m, start_m)
    s = np.arange(start_m, total_m + 1e-9, spacing_m)
    xy, tangent = _points_at(poly, s)
    xy = xy + lateral_offset_m * np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    with _net_geometry(str(net_file)):
        ends = np.cumsum([_shape_len_m(net.getEdge(e).getShape()) for e in ids])     # where each edge ends
    on = np.minimum(np.searchsorted(ends, s, side="right"), len(ids) - 1)
    return RsuLayout(tuple(f"rsu{i}" for i in range(len(s))), xy, float(radius_m), tuple(ids[i] for i in on))


def _polyline_from(shape: Sequence[tuple[float, float]], s_m: float) -> list[tuple[float, float]]:
    """The part of a polyline from arc length `s_m` to its end."""
    pts = [(float(x), float(y)) for x, y in shape]
    acc = 0.0
    for i in range(len(pts) - 1):
        (x0, y0), (x1, y1) = pts[i], pts[i + 1]
        seg = float(np.hypot(x1 - x0, y1 - y0))
        if acc + seg >= s_m and seg > 0:
            f = max(s_m - acc, 0.0) / seg
            return [(x0 + f * (x1 - x0), y0 + f * (y1 - y0))] + pts[i + 1:]
        acc += seg
    return pts[-1:]


def _shape_len_m(shape: Sequence[tuple[float, float]]) -> float:
    a = np.asarray(shape, dtype=float)
    return float(np.sqrt((np.diff(a, axis=0) ** 2).sum(axis=1)).sum()) if len(a) > 1 else 0.0


def _is_internal(lane) -> bool:
    return lane.getEdge().getID().startswith(":")


def _through_internal(lane, out: list[tuple[float, float]]):
    """From an internal (junction) lane, follow further internal lanes (appending their shapes) to the
    next normal lane, which is returned, not appended. None if the chain ends."""
    for _ in range(16):  # internal lanes chain only a few deep
        if not _is_internal(lane):
            return lane
        conns = lane.getOutgoing()
        if not conns:
            return None
        lane = conns[0].getToLane()
        if _is_internal(lane):
            out.extend(lane.getShape())
    return None


def remaining_path_xy(net: sumolib.net.Net | str | Path, route_edges: Sequence[str], route_index: int, lane_id: str,
                      lane_pos_m: float) -> np.ndarray:
    """(m, 2) polyline a vehicle still drives: from `lane_pos_m` on `lane_id` to the end of its route.

    `route_index` is the index in `route_edges` of the current edge (of the last normal edge while on a
    junction, as SUMO reports it). At each edge change the path takes the connection whose lanes are
    nearest to the current lane index and passes through the junction's internal lane. Lane changes
    within an edge are ignored (a few metres sideways). A route that is not connected ends the path.
    """
    net, net_name = _net_path(net)
    with _net_geometry(net_name):
        return _remaining_path_xy(net, route_edges, route_index, lane_id, lane_pos_m)


def _remaining_path_xy(net: sumolib.net.Net, route_edges: Sequence[str], route_index: int, lane_id: str,
                       lane_pos_m: float) -> np.ndarray:
    lane = net.getLane(lane_id)
    shape = lane.getShape()
    geom_factor = _shape_len_m(shape) / lane.getLength() if lane.getLength() > 0 else 1.0
    out = _polyline_from(shape, lane_pos_m * geom_factor)
    next_i = route_index + 1
    if _is_internal(lane):
        lane = _through_internal(lane, out)
        if lane is not None:
            out.extend(lane.getShape())
            rest = list(route_edges[route_index:])
            eid = lane.getEdge().getID()
            next_i = route_index + rest.index(eid) + 1 if eid in rest else len(route_edges)
    for eid in route_edges[next_i:]:
        if lane is None or not net.hasEdge(eid):
            break
        conns = lane.getEdge().getConnections(net.getEdge(eid))
        if not conns:
            break
        li = lane.getIndex()
        conn = min(conns, key=lambda c: (abs(c.getFromLane().getIndex() - li), c.getToLane().getIndex()))
        via = conn.getViaLaneID()
        if via and net.hasEdge(via.rsplit("_", 1)[0]):
            via_lane = net.getLane(via)
            out.extend(via_lane.getShape())
            _through_internal(via_lane, out)
        lane = conn.getToLane()
        out.extend(lane.getShape())
    pts = np.asarray(out, dtype=float).reshape(-1, 2)
    keep = np.concatenate([[True], np.sqrt((np.diff(pts, axis=0) ** 2).sum(axis=1)) > 1e-9])
    return pts[keep]
