"""The model registry: every model and LOS state through link_gain_linear (one decorator for all)."""
import numpy as np
import pytest

from channel import models, v2i, v2v
from channel.pathloss import free_space_pl_db
from channel.seed import free_space_gain_at_1m, seed_gain_linear

DISTANCES_M = np.array([10.0, 50.0, 100.0, 300.0, 1000.0])
CARRIER_HZ = 5.9e9

# (model, los) for every model and each LOS state it has; None = a model without LOS states
MODEL_STATES = [(name, los) for name, m in models.MODELS.items()
                for los in ((True, False) if m.los_probability is not None else (None,))]
every_model_and_state = pytest.mark.parametrize(
    "model_name, los", MODEL_STATES, ids=[f"{n}-{ {True: 'los', False: 'nlos', None: 'any'}[s] }"
                                          for n, s in MODEL_STATES])


def _kw(los):
    return {} if los is None else {"los": np.full(DISTANCES_M.shape, los)}


@every_model_and_state
def test_gain_shape_range_and_determinism(model_name, los):
    a = models.link_gain_linear(model_name, DISTANCES_M, CARRIER_HZ, np.random.default_rng(8), **_kw(los))
    b = models.link_gain_linear(model_name, DISTANCES_M, CARRIER_HZ, np.random.default_rng(8), **_kw(los))
    assert a.shape == DISTANCES_M.shape
    assert np.all((a > 0) & (a < 1))
    assert np.array_equal(a, b)


@every_model_and_state
def test_mean_gain_decreases_with_distance(model_name, los):
    d = np.repeat(DISTANCES_M, 2000)
    kw = {} if los is None else {"los": np.full(d.shape, los)}
    g = models.link_gain_linear(model_name, d, CARRIER_HZ, np.random.default_rng(9), **kw)
    assert np.all(np.diff(g.reshape(len(DISTANCES_M), -1).mean(axis=1)) < 0)


@every_model_and_state
def test_shadowing_adds_in_db(model_name, los):
    rng_kw = dict(rng=np.random.default_rng(10), **_kw(los))
    base = models.pathloss_db(model_name, DISTANCES_M, CARRIER_HZ, **rng_kw)
    rng_kw["rng"] = np.random.default_rng(10)
    shadow = np.linspace(-6, 6, DISTANCES_M.size)
    np.testing.assert_allclose(models.pathloss_db(model_name, DISTANCES_M, CARRIER_HZ, shadowing_db=shadow,
                                                  **rng_kw), base + shadow)


@every_model_and_state
def test_unknown_parameter_is_named(model_name, los):
    with pytest.raises(ValueError, match="bogus_m"):
        models.link_gain_linear(model_name, DISTANCES_M, CARRIER_HZ, np.random.default_rng(0), bogus_m=1.0,
                                **_kw(los))


REFERENCES = [
    ("seed", {}, lambda d: seed_gain_linear(d, free_space_gain_at_1m(CARRIER_HZ), 2.5)),
    ("seed", {"h0": 1e-3, "gamma": 3.0}, lambda d: 1e-3 * d ** -3.0),
    ("free_space", {}, lambda d: 10 ** (-free_space_pl_db(d, CARRIER_HZ) / 10)),
    ("tr37885_highway", {"los": True}, lambda d: 10 ** (-v2v.highway_los_pl_db(d, CARRIER_HZ) / 10)),
    ("tr37885_urban", {"los": True}, lambda d: 10 ** (-v2v.urban_los_pl_db(d, CARRIER_HZ) / 10)),
    ("tr37885_urban", {"los": False, "building_nlos": True},
     lambda d: 10 ** (-v2v.urban_nlos_pl_db(d, CARRIER_HZ) / 10)),
    ("tr36885_macro", {}, lambda d: 10 ** (-v2i.macro_pl_db(d) / 10)),
    ("tr38901_umi", {"los": True}, lambda d: 10 ** (-v2i.umi_los_pl_db(d, CARRIER_HZ) / 10)),
    ("tr38901_umi", {"los": False, "bs_height_m": 12.0},
     lambda d: 10 ** (-v2i.umi_nlos_pl_db(d, CARRIER_HZ, bs_height_m=12.0) / 10)),
]


@pytest.mark.parametrize("model_name, params, ref", REFERENCES,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REFERENCES)])
def test_registry_matches_module_functions(model_name, params, ref):
    got = models.link_gain_linear(model_name, DISTANCES_M, CARRIER_HZ, np.random.default_rng(0), **params)
    np.testing.assert_allclose(got, ref(DISTANCES_M), rtol=1e-12)


def test_nlosv_adds_nonnegative_blockage():
    rng = np.random.default_rng(11)
    los_pl = models.pathloss_db("tr37885_highway", DISTANCES_M, CARRIER_HZ, los=True)
    nlosv_pl = models.pathloss_db("tr37885_highway", DISTANCES_M, CARRIER_HZ, rng, los=False)
    assert np.all(nlosv_pl >= los_pl)


def test_drawn_los_matches_probability():
    rng = np.random.default_rng(12)
    d = np.full(20_000, 200.0)
    los = models.draw_los("tr37885_urban", d, rng)
    assert abs(los.mean() - v2v.urban_los_probability(200.0)) < 0.01
    with pytest.raises(ValueError, match="no LOS states"):
        models.draw_los("seed", d, rng)


def test_distance_clipped_to_min_distance():
    g = models.link_gain_linear("seed", np.array([0.0, 0.5, 1.0]), CARRIER_HZ)
    assert g[0] == g[1] == g[2]
    g = models.link_gain_linear("free_space", np.array([0.0, 2.0]), CARRIER_HZ, min_distance_m=2.0)
    assert g[0] == g[1]


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="model_name"):
        models.link_gain_linear("okumura", DISTANCES_M, CARRIER_HZ)
    with pytest.raises(ValueError, match="rng"):
        models.link_gain_linear("tr38901_umi", DISTANCES_M, CARRIER_HZ)  # LOS states must be drawn
    with pytest.raises(ValueError, match="distance_m"):
        models.link_gain_linear("seed", np.array([-1.0]), CARRIER_HZ)
    with pytest.raises(ValueError, match="carrier_hz"):
        models.link_gain_linear("seed", DISTANCES_M, -1.0)
    with pytest.raises(ValueError, match="los"):
        models.link_gain_linear("tr38901_umi", DISTANCES_M, CARRIER_HZ, los=np.ones(5))
    with pytest.raises(ValueError, match="los"):
        models.link_gain_linear("seed", DISTANCES_M, CARRIER_HZ, los=np.ones(5, bool))
