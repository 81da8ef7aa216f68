"""Free-space and V2V/V2I path-loss formulas against independent re-implementations."""
import math

import numpy as np
import pytest

from channel import pathloss, v2i, v2v
from channel.seed import free_space_gain_at_1m

DISTANCES_M = [10.0, 50.0, 100.0, 300.0, 1000.0]
CARRIERS_HZ = [2e9, 5.9e9, 28e9]
C = 299_792_458.0
FORMULA_ATOL_DB = 1e-9
TABLE_CONSTANT_ATOL_DB = 0.01  # FSPL constant is printed as -147.55 dB


def fspl_ref(d, f):
    return 20 * math.log10(d) + 20 * math.log10(f) - 147.55


def highway_ref(d, f):
    return 32.4 + 20 * math.log10(d) + 20 * math.log10(f / 1e9)


def urban_los_ref(d, f):
    return 38.77 + 16.7 * math.log10(d) + 18.2 * math.log10(f / 1e9)


def urban_nlos_ref(d, f):
    return 36.85 + 30 * math.log10(d) + 18.9 * math.log10(f / 1e9)


def umi_los_ref(d2, f, hbs=10.0, hut=1.5):
    d3 = math.hypot(d2, hbs - hut)
    dbp = 4 * (hbs - 1) * (hut - 1) * f / C
    fg = f / 1e9
    if d2 <= dbp:
        return 32.4 + 21 * math.log10(d3) + 20 * math.log10(fg)
    return 32.4 + 40 * math.log10(d3) + 20 * math.log10(fg) - 9.5 * math.log10(dbp**2 + (hbs - hut) ** 2)


def umi_nlos_ref(d2, f, hbs=10.0, hut=1.5):
    d3 = math.hypot(d2, hbs - hut)
    nlos = 35.3 * math.log10(d3) + 22.4 + 21.3 * math.log10(f / 1e9) - 0.3 * (hut - 1.5)
    return max(umi_los_ref(d2, f, hbs, hut), nlos)


FORMULAS = [
    ("free_space", pathloss.free_space_pl_db, fspl_ref, TABLE_CONSTANT_ATOL_DB),
    ("v2v_highway_los", v2v.highway_los_pl_db, highway_ref, FORMULA_ATOL_DB),
    ("v2v_urban_los", v2v.urban_los_pl_db, urban_los_ref, FORMULA_ATOL_DB),
    ("v2v_urban_nlos", v2v.urban_nlos_pl_db, urban_nlos_ref, FORMULA_ATOL_DB),
    ("umi_los", v2i.umi_los_pl_db, umi_los_ref, FORMULA_ATOL_DB),
    ("umi_nlos", v2i.umi_nlos_pl_db, umi_nlos_ref, FORMULA_ATOL_DB),
]


@pytest.mark.parametrize("name, fn, ref, atol", FORMULAS, ids=[f[0] for f in FORMULAS])
@pytest.mark.parametrize("carrier_hz", CARRIERS_HZ)
def test_formula_matches_reference(name, fn, ref, atol, carrier_hz):
    got = fn(np.array(DISTANCES_M), carrier_hz)
    want = [ref(d, carrier_hz) for d in DISTANCES_M]
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


def test_macro_matches_reference():
    got = v2i.macro_pl_db(np.array(DISTANCES_M))
    want = [128.1 + 37.6 * math.log10(d / 1000) for d in DISTANCES_M]
    np.testing.assert_allclose(got, want, rtol=0, atol=FORMULA_ATOL_DB)
    assert v2i.macro_pl_db(1000.0) == pytest.approx(128.1)


def test_free_space_agrees_with_seed_h0():
    for f in CARRIERS_HZ:
        assert pathloss.free_space_pl_db(1.0, f) == pytest.approx(-10 * math.log10(free_space_gain_at_1m(f)))


def test_highway_los_is_free_space_within_table_rounding():
    d = np.array(DISTANCES_M)
    diff = v2v.highway_los_pl_db(d, 5.9e9) - pathloss.free_space_pl_db(d, 5.9e9)
    assert np.all(np.abs(diff) < 0.06)


@pytest.mark.parametrize("carrier_hz", CARRIERS_HZ)
def test_umi_los_continuous_at_breakpoint(carrier_hz):
    d_bp = float(v2i.umi_breakpoint_distance_m(carrier_hz))
    below, above = v2i.umi_los_pl_db(np.array([d_bp, np.nextafter(d_bp, np.inf)]), carrier_hz)
    assert above == pytest.approx(below, abs=1e-6)


def test_umi_breakpoint_uses_effective_heights():
    assert v2i.umi_breakpoint_distance_m(3.5e9, 10.0, 1.5) == pytest.approx(4 * 9 * 0.5 * 3.5e9 / C)


def test_umi_nlos_never_below_los():
    d = np.linspace(10, 5000, 200)
    assert np.all(v2i.umi_nlos_pl_db(d, 28e9) >= v2i.umi_los_pl_db(d, 28e9))


def test_gain_round_trip():
    pl = np.array([0.0, 3.0103, 60.0, 140.0])
    np.testing.assert_allclose(pathloss.pl_db_from_gain_linear(pathloss.gain_linear_from_pl_db(pl)), pl)
    assert pathloss.gain_linear_from_pl_db(30.0) == pytest.approx(1e-3)


@pytest.mark.parametrize("fn", [pathloss.free_space_pl_db, v2v.highway_los_pl_db, v2v.urban_los_pl_db,
                                v2v.urban_nlos_pl_db, v2i.umi_los_pl_db, v2i.umi_nlos_pl_db])
@pytest.mark.parametrize("bad_d", [0.0, -5.0, np.nan])
def test_bad_distance_names_argument(fn, bad_d):
    with pytest.raises(ValueError, match=r"distance.*got"):
        fn(np.array([10.0, bad_d]), 2e9)


def test_bad_carrier_and_height_name_argument():
    with pytest.raises(ValueError, match="carrier_hz"):
        pathloss.free_space_pl_db(10.0, 0.0)
    with pytest.raises(ValueError, match="ut_height_m"):
        v2i.umi_los_pl_db(10.0, 2e9, ut_height_m=0.8)
