"""Buildings blocking links (TR 37.885 Sec. 6.2.1 urban NLOS): shapely against a brute force, SUMO polygon files,
the bundled urban grid's blocks and the grid builder's polygon file."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sumolib

from channel.buildings import Buildings
from mobility.builders import BuildParameterError, build_urban_grid, write_block_buildings
from mobility.sumo_live import sumo_binary, sumo_home

REPO = Path(__file__).resolve().parents[2]
GRID = REPO / "scenarios" / "urban_grid"
# primitive integer directions: edges along them hold integer points only at integer multiples
DIRECTIONS = [(1, 0), (0, 1), (3, 4), (4, 3), (5, 12), (12, 5), (-3, 4), (8, -15)]


def brute_blocked(a, b, rects):
    """(n,) bool: the closed segment a[i] -> b[i] meets the open interior of a CCW convex polygon in `rects`.
    Interior: cross(e_k, p - v_k) > 0 on every edge k. Along the segment p(t) = a + t (b - a) that is
    c_k + t d_k > 0; the feasible t is an interval, nonempty iff every lower bound is below every upper
    bound (t >= 0 and t <= 1 included). Integer coordinates keep every product exact in float64."""
    a, b = np.asarray(a, float)[:, None, None, :], np.asarray(b, float)[:, None, None, :]
    v = np.asarray(rects, float)[None]                      # (1, m, 4, 2)
    e = np.roll(v, -1, axis=2) - v

    def cross(u, w):
        return u[..., 0] * w[..., 1] - u[..., 1] * w[..., 0]

    c, d = cross(e, a - v), cross(e, b - a)                 # (n, m, 4)
    # bounds as fractions num / den with den > 0; absent ones as -1 (lower) and 2 (upper)
    lo_num = np.where(d > 0, -c, -1.0)
    lo_den = np.where(d > 0, d, 1.0)
    up_num = np.where(d < 0, c, 2.0)
    up_den = np.where(d < 0, -d, 1.0)
    shape = c.shape[:2] + (1,)
    lo_num = np.concatenate([lo_num, np.zeros(shape)], axis=2)
    lo_den = np.concatenate([lo_den, np.ones(shape)], axis=2)
    up_num = np.concatenate([up_num, np.ones(shape)], axis=2)
    up_den = np.concatenate([up_den, np.ones(shape)], axis=2)
    pairs_ok = lo_num[..., :, None] * up_den[..., None, :] < up_num[..., None, :] * lo_den[..., :, None]
    parallel_ok = np.where(d == 0, c > 0, True)
    hit = pairs_ok.all(axis=(-1, -2)) & parallel_ok.all(axis=-1)
    return hit.any(axis=1)


def random_rects(rng, m):
    """Rectangles with integer corners, axis-aligned or rotated along DIRECTIONS, counter-clockwise."""
    rects = []
    for _ in range(m):
        ux, uy = DIRECTIONS[rng.integers(len(DIRECTIONS))]
        u, v = np.array([ux, uy]), np.array([-uy, ux])
        scale = 1 if abs(ux) + abs(uy) > 1 else 10
        w, h = rng.integers(1, 4, size=2) * scale
        o = rng.integers(-30, 31, size=2)
        rects.append(np.array([o, o + w * u, o + w * u + h * v, o + h * v]))
    return rects


def random_segments(rng, rects, n):
    """Random segments plus degenerate ones: along an edge (inside it, past its ends), ending on an edge,
    corner to corner, corner to a random point, and zero length."""
    a = rng.integers(-60, 61, size=(n, 2))
    b = rng.integers(-60, 61, size=(n, 2))
    extra_a, extra_b = [], []
    for r in rects:
        for k in range(4):
            v0, v1 = r[k], r[(k + 1) % 4]
            step = (v1 - v0) // np.gcd.reduce(np.abs(v1 - v0))
            n_steps = int(np.gcd.reduce(np.abs(v1 - v0)))
            s, t = rng.integers(-3, n_steps + 4, size=2)
            on_edge = v0 + rng.integers(0, n_steps + 1) * step
            extra_a += [v0 + s * step, v0, on_edge, on_edge, v0, on_edge, v0]
            extra_b += [v0 + t * step, v1, rng.integers(-60, 61, size=2), r[(k + 2) % 4], r[(k + 2) % 4],
                        on_edge, rng.integers(-60, 61, size=2)]
    return np.vstack([a, extra_a]), np.vstack([b, extra_b])


@pytest.mark.parametrize("seed", range(6))
def test_blocked_matches_a_brute_force(seed):
    rng = np.random.default_rng(seed)
    rects = random_rects(rng, 8)
    a, b = random_segments(rng, rects, 300)
    a, b = np.vstack([a, b]), np.vstack([b, a])  # both directions

    got = Buildings(rects).blocked(a, b)

    want = brute_blocked(a, b, rects)
    np.testing.assert_array_equal(got, want)
    assert 0.05 < want.mean() < 0.95


def test_blocked_with_arbitrary_rotations_matches_a_brute_force():
    rng = np.random.default_rng(11)
    rects = []
    for _ in range(10):
        theta = rng.uniform(0, 2 * np.pi)
        u, v = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
        o, (w, h) = rng.uniform(-50, 50, 2), rng.uniform(2, 20, 2)
        rects.append(np.array([o, o + w * u, o + w * u + h * v, o + h * v]))
    a, b = rng.uniform(-70, 70, (2000, 2)), rng.uniform(-70, 70, (2000, 2))

    np.testing.assert_array_equal(Buildings(rects).blocked(a, b), brute_blocked(a, b, rects))


SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
CASES = [  # (a, b, blocked)
    ((-5, 5), (15, 5), True),      # straight through
    ((0, 0), (10, 0), False),      # the edge itself
    ((-5, 0), (15, 0), False),     # along the facade line, past both corners
    ((-5, 5), (0, 5), False),      # ends on a wall
    ((-5, -5), (0, 0), False),     # ends on a corner
    ((-5, 5), (5, -5), False),     # through a corner only
    ((0, 0), (10, 10), True),      # corner to corner, through the inside
    ((5, 5), (5, 5), True),        # zero length inside
    ((0, 5), (0, 5), False),       # zero length on the wall
    ((2, 2), (3, 3), True),        # wholly inside
    ((-5, 5), (1e-9, 5), True),    # just inside
]


@pytest.mark.parametrize("a, b, want", CASES)
def test_blocked_edge_cases(a, b, want):
    assert Buildings([SQUARE]).blocked([a], [b]).tolist() == [want]


def test_blocked_shapes_empty_and_bad_input():
    buildings = Buildings([SQUARE])
    assert buildings.blocked(np.empty((0, 2)), np.empty((0, 2))).shape == (0,)
    assert buildings.blocked(np.empty((0, 2)), np.empty((0, 2))).dtype == bool
    with pytest.raises(ValueError, match="same shape"):
        buildings.blocked([[0, 0]], [[1, 1], [2, 2]])
    with pytest.raises(ValueError, match=r"a_xy must have shape \(n, 2\)"):
        buildings.blocked([0, 0, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="b_xy must be finite"):
        buildings.blocked([[0, 0]], [[np.nan, 1]])


def test_degenerate_and_invalid_polygons():
    bow_tie = [[20, 0], [30, 10], [30, 0], [20, 10]]  # self-intersecting: two triangles
    buildings = Buildings([SQUARE, [[0, 0], [1, 1], [0, 0]], [[0, 0], [1, 1], [2, 2]], bow_tie])
    assert len(buildings) == 2
    np.testing.assert_array_equal(buildings.polygons[1], bow_tie)
    # the bow tie's triangles point at (25, 5) from the left and the right
    assert buildings.blocked([[20, 5], [21, 5], [29, 5], [25, 1], [-5, 20]],
                             [[30, 5], [21, 5.1], [29, 5.1], [25, 9], [35, 20]]).tolist() == [
        True, True, True, False, False]
    assert Buildings([]).blocked([[0, 0]], [[1, 1]]).tolist() == [False]


def test_blocked_links_tests_only_masked_links():
    buildings = Buildings([SQUARE])
    xy = np.array([[-5, 5], [5, -5], [20, 20]], float)
    ends = np.array([[15, 5], [5, 15], [-5, 5]], float)
    mask = np.array([[True, True, True], [True, False, True], [False, True, True]])

    got = buildings.blocked_links(xy, ends, mask)

    full = buildings.blocked(np.repeat(xy, 3, axis=0), np.tile(ends, (3, 1))).reshape(3, 3)
    np.testing.assert_array_equal(got, full & mask)
    assert full[1, 1]  # straight through, but not asked for
    assert got.tolist() == [[True, False, False], [False, False, False], [False, False, True]]
    assert buildings.blocked_links(xy, ends, np.zeros((3, 3), bool)).sum() == 0
    assert buildings.blocked_links(np.empty((0, 2)), ends, np.zeros((0, 3), bool)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 3\)"):
        buildings.blocked_links(xy, ends, mask[:2])


POLY_XML = """<?xml version="1.0" encoding="UTF-8"?>
<additional>
    <poly id="b1" type="building.yes" color="255,230,230" fill="1" layer="-1" shape="0,0 10,0 10,10 0,10 0,0"/>
    <poly id="b2" type="building" color="255,230,230" fill="1" layer="-1" shape="20,0 30,0 30,10 20,10"/>
    <poly id="flat" type="building.yes" color="255,230,230" fill="1" layer="-1" shape="40,0 50,0 40,0"/>
    <poly id="lake" type="natural.water" color="0,0,255" fill="1" layer="-1" shape="0,20 30,20 30,30 0,30"/>
    <poi id="p" type="amenity" color="1,0,0" x="5" y="5"/>
</additional>
"""


def test_from_file_keeps_only_buildings(tmp_path):
    path = tmp_path / "city.poly.xml"
    path.write_text(POLY_XML)

    buildings = Buildings.from_file(path)

    assert len(buildings) == 2
    np.testing.assert_array_equal(buildings.polygons[1], [[20, 0], [30, 0], [30, 10], [20, 10]])
    assert buildings.blocked([[-5, 5], [15, 5], [-5, 25]], [[35, 5], [15, 25], [35, 25]]).tolist() == [
        True, False, False]


@pytest.mark.parametrize("content, expected", [
    (None, "could not read it"),
    ("<additional><poly id='x' type='building' shape='0,0 1,0 1,1'", "could not read it"),
    ("<additional><poly id='x' type='building' color='1,0,0' shape='0,0 a,0 1,1'/></additional>",
     "could not read it"),
    ("<additional><poly id='x' type='building' color='1,0,0'/></additional>", "one lacks 'shape'"),
    ("<additional><poly id='x' type='building' shape='0,0 1,0 1,1'/></additional>", "one lacks 'color'"),
    ("<additional/>", "found none among 0 polygons"),
    (POLY_XML.replace('type="building', 'type="landuse'), "found none among 4 polygons"),
    ("<additional><poly id='x' type='building' color='1,0,0' geo='1' shape='0,0 1,0 1,1'/></additional>",
     "geo"),
])
def test_from_file_errors_are_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.poly.xml"
    if content is not None:
        path.write_text(content)

    with pytest.raises(ValueError) as err:
        Buildings.from_file(path)

    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path)) and expected in msg


def street_lines(net_path):
    """Sorted unique junction x and y coordinates of a grid net: its streets' centre lines."""
    nodes = sumolib.net.readNet(str(net_path), withInternal=False).getNodes()
    return (np.unique([n.getCoord()[0] for n in nodes]), np.unique([n.getCoord()[1] for n in nodes]))


@pytest.fixture(scope="module")
def bundled():
    xs, ys = street_lines(GRID / "urban_grid.net.xml")
    return Buildings.from_file(GRID / "urban_grid.poly.xml"), xs, ys


def test_bundled_grid_has_a_building_per_block(bundled):
    buildings, xs, ys = bundled
    assert len(xs) == len(ys) == 5
    assert len(buildings) == (len(xs) - 1) ** 2


def test_bundled_grid_blocks_around_a_corner(bundled):
    buildings, xs, ys = bundled
    # mid-block on the vertical street x = xs[i], seen from mid-block on the horizontal street y = ys[j]
    a, b = [], []
    for i in range(len(xs)):
        for j in range(len(ys)):
            for di in (-1, 1):
                for dj in (-1, 1):
                    if 0 <= j + dj < len(ys) and 0 <= i + di < len(xs):
                        a.append((xs[i], (ys[j] + ys[j + dj]) / 2))
                        b.append(((xs[i] + xs[i + di]) / 2, ys[j]))
    assert len(a) == 4 * 4 * 4
    assert buildings.blocked(a, b).all()
    # the same points, both at the corner's junction: free
    assert not buildings.blocked(a, [(x, y) for x, y in zip(np.array(a)[:, 0], np.array(b)[:, 1])]).any()


def test_bundled_grid_never_blocks_two_points_on_one_street(bundled):
    buildings, xs, ys = bundled
    rng = np.random.default_rng(3)
    n = 2000
    lateral = rng.uniform(-3.2, 3.2, size=(n, 2))   # anywhere across the street's lanes
    along = rng.uniform(ys[0] - 50, ys[-1] + 50, size=(n, 2))
    street = rng.choice(xs, size=n)
    vertical_a = np.column_stack([street + lateral[:, 0], along[:, 0]])
    vertical_b = np.column_stack([street + lateral[:, 1], along[:, 1]])
    street = rng.choice(ys, size=n)
    horizontal_a = np.column_stack([along[:, 0], street + lateral[:, 0]])
    horizontal_b = np.column_stack([along[:, 1], street + lateral[:, 1]])

    assert not buildings.blocked(np.vstack([vertical_a, horizontal_a]), np.vstack([vertical_b, horizontal_b])).any()
    # lane shapes of the net: any two points of one edge's lanes see each other
    net = sumolib.net.readNet(str(GRID / "urban_grid.net.xml"), withInternal=False)
    pts = [np.array(lane.getShape()) for edge in net.getEdges() for lane in edge.getLanes()]
    a = np.vstack([p[[0, 0, -1]] for p in pts])
    b = np.vstack([p[[-1, -1, 0]] + [[0, 0], [0.5, 0.5], [0, 0]] for p in pts])
    assert not buildings.blocked(a, b).any()


def test_bundled_poly_file_is_what_the_builder_writes(tmp_path):
    out = write_block_buildings(GRID / "urban_grid.net.xml", tmp_path / "urban_grid.poly.xml", 10.0)
    assert out.read_bytes() == (GRID / "urban_grid.poly.xml").read_bytes()


def test_block_buildings_follow_the_net_offset(tmp_path):
    net = tmp_path / "off.net.xml"
    subprocess.run([str(sumo_binary("netgenerate")), "--grid", "--grid.number", "3", "--grid.length", "100",
                    "--offset.x", "1000", "--offset.y", "-50", "-o", str(net), "--no-warnings"],
                   check=True, capture_output=True, env=dict(os.environ, SUMO_HOME=str(sumo_home())))

    buildings = Buildings.from_file(write_block_buildings(net, tmp_path / "off.poly.xml", 5.0))

    assert len(buildings) == 4
    np.testing.assert_array_equal(buildings.polygons[0][:4], [[1005, -45], [1095, -45], [1095, 45], [1005, 45]])
    np.testing.assert_array_equal(buildings.polygons[3][2], [1195, 145])


def test_grid_builder_is_byte_identical_and_checks_the_setback(tmp_path):
    kwargs = dict(grid_n=3, block_m=100.0, vehicles_per_hour=600.0, duration_s=30.0, seed=4,
                  building_setback_m=12.5)
    a = build_urban_grid(tmp_path / "a", **kwargs)
    b = build_urban_grid(tmp_path / "b", **kwargs)

    assert a.buildings == tmp_path / "a" / "urban_grid.poly.xml"
    for fa, fb in ((a.net, b.net), (a.routes, b.routes), (a.sumocfg, b.sumocfg), (a.buildings, b.buildings)):
        assert fa.read_bytes() == fb.read_bytes(), fa.name
    text = a.buildings.read_text()
    assert "<!--" not in text and text.count("<poly ") == 4 and 'id="block_1_0"' in text
    assert len(Buildings.from_file(a.buildings)) == 4
    for bad in (0.0, -1.0, 50.0, float("nan")):
        with pytest.raises(BuildParameterError, match="building_setback_m must be > 0 and < 50"):
            build_urban_grid(tmp_path / "c", grid_n=3, block_m=100.0, building_setback_m=bad)
    assert not (tmp_path / "c").exists()
