"""Buildings as 2-D polygons and which straight links they block (geometry-based LOS / NLOS).

TR 37.885 Sec. 6.2.1: in the urban scenario a link is NLOS when buildings block the line between its ends.

A segment is blocked where it meets the *interior* of some building: a segment that only touches a building
(along a facade line, or ending on a wall or a corner) is not blocked. With shapely's predicates that is
`intersects and not touches` (touches: the geometries meet but their interiors do not), which is exact, unlike
shrinking the polygons by a small negative buffer. A zero-length segment (a == b) is blocked when its point lies
inside a building. Coordinates are metres in the SUMO network's x, y frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence
from xml.sax import SAXException

import numpy as np
import shapely

from ._validate import finite_array

__all__ = ["Buildings"]


def _points(name: str, value) -> np.ndarray:
    arr = finite_array(name, value)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {arr.shape}")
    return arr


def _polygonal_parts(geom) -> list:
    """A polygon as it is if valid; else the polygons of shapely.make_valid (a bow-tie gives two)."""
    if shapely.is_valid(geom):
        return [geom]
    parts = shapely.get_parts(shapely.make_valid(geom))
    parts = np.concatenate([shapely.get_parts(p) for p in parts if p.geom_type in ("Polygon", "MultiPolygon")]
                           or [np.empty(0, dtype=object)])
    return [p for p in parts if not p.is_empty and p.area > 0]


def _finite_xy(shape) -> bool:
    """Whether a shape is a non-empty list of finite (x, y) pairs."""
    try:
        xy = np.asarray(shape, dtype=float)
    except (TypeError, ValueError):
        return False
    return xy.ndim == 2 and xy.shape[0] > 0 and xy.shape[1] == 2 and bool(np.isfinite(xy).all())


class Buildings:
    """Building footprints, indexed by a shapely STRtree for bulk "which links are blocked" queries."""

    CHECKPOINT_STATIC = True        # unchanged after it is built (cosim.checkpoint leaves it to the rebuilt run)

    def __init__(self, polygons: Sequence):
        """`polygons`: each an (m, 2) array-like of x, y in metres (closed or not). Polygons with fewer than
        3 distinct points are skipped; a self-intersecting one is split by shapely.make_valid."""
        kept: list[np.ndarray] = []
        geoms: list = []
        for i, poly in enumerate(polygons):
            xy = _points(f"polygons[{i}]", poly)
            if len(np.unique(xy, axis=0)) < 3:
                continue
            parts = _polygonal_parts(shapely.polygons(xy))
            if parts:
                kept.append(xy)
                geoms.extend(parts)
        self._polygons = kept
        self._geoms = np.array(geoms, dtype=object)
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)

    @classmethod
    def from_file(cls, path: str | Path) -> "Buildings":
        """The polygons of a SUMO polygon file (.poly.xml, as polyconvert writes from OSM) whose type starts
        with "building" (e.g. "building", "building.yes"). ValueError (one line) if the file cannot be read
        or holds no such polygon."""
        from sumolib.shapes import polygon

        try:
            polys = polygon.read(str(path))
        except KeyError as e:               # sumolib's reader needs these attributes on every <poly>
            raise ValueError(f"{path}: expected a SUMO polygon file whose <poly> elements all have id, type, "
                             f"color and shape (as polyconvert writes them); one lacks {e}") from None
        except (OSError, SAXException, ValueError, IndexError) as e:
            why = " ".join(str(e).split()) or type(e).__name__
            raise ValueError(f"{path}: expected a SUMO polygon file (<poly> elements with a shape), "
                             f"could not read it ({why})") from None
        kept = [p for p in polys if (p.type or "").startswith("building")]
        if any(str(p.geo).lower() in ("1", "true") for p in kept):
            raise ValueError(f"{path}: expected building shapes in network x, y coordinates, found geo "
                             "(lon, lat) shapes")
        try:
            buildings = cls([p.shape for p in kept])
        except (ValueError, shapely.errors.ShapelyError) as e:     # an empty, 1-D or non-finite shape
            bad = next((p.id for p in kept if not _finite_xy(p.shape)), None)
            which = f"<poly id={bad!r}>" if bad is not None else "a <poly>"
            raise ValueError(f"{path}: {which} has a shape that is not x,y pairs of finite numbers (expected "
                             f"\"x1,y1 x2,y2 ...\"; {' '.join(str(e).split())})") from None
        if not len(buildings):
            raise ValueError(f"{path}: expected at least one <poly> of type 'building...' with 3 or more "
                             f"distinct points, found none among {len(polys)} polygons")
        return buildings

    @property
    def polygons(self) -> list[np.ndarray]:
        """The kept polygons, each an (m, 2) float array as given."""
        return list(self._polygons)

    def __len__(self) -> int:
        return len(self._polygons)

    def blocked(self, a_xy, b_xy) -> np.ndarray:
        """(n,) bool: True where the segment a_xy[i] -> b_xy[i] meets the interior of some building.
        a_xy, b_xy: (n, 2) metres. One STRtree query for all segments."""
        a = _points("a_xy", a_xy)
        b = _points("b_xy", b_xy)
        if a.shape != b.shape:
            raise ValueError(f"a_xy and b_xy must have the same shape, got {a.shape} and {b.shape}")
        out = np.zeros(len(a), dtype=bool)
        if len(a) == 0 or len(self._geoms) == 0:
            return out
        segs = shapely.linestrings(np.stack([a, b], axis=1))
        seg_i, poly_j = self._tree.query(segs, predicate="intersects")
        inside = ~shapely.touches(segs[seg_i], self._geoms[poly_j])
        out[seg_i[inside]] = True
        return out

    def blocked_links(self, xy_m, ends_xy_m, mask) -> np.ndarray:
        """(n, k) bool: True where mask[i, j] and the link from vehicle xy_m[i] to end ends_xy_m[j] (an RSU or
        another vehicle) is blocked. Only the masked links are tested."""
        xy = _points("xy_m", xy_m)
        ends = _points("ends_xy_m", ends_xy_m)
        m = np.asarray(mask, dtype=bool)
        if m.shape != (len(xy), len(ends)):
            raise ValueError(f"mask must have shape {(len(xy), len(ends))}, got {m.shape}")
        out = np.zeros(m.shape, dtype=bool)
        i, j = np.nonzero(m)
        out[i, j] = self.blocked(xy[i], ends[j])
        return out
