"""Scenario keys for channels, packets and backhaul: defaults, parsing, one-line errors."""
from __future__ import annotations

import pytest

from cosim.build import build_radio
from cosim.errors import ScenarioError
from cosim.scenario import validate_tree


def _channel(**channel):
    return validate_tree({"name": "t", "channel": channel}, "t.yaml")


def test_defaults_are_the_seed_papers_channel_and_ideal_packets():
    sc = validate_tree({"name": "t"}, "t.yaml")
    c = sc.channel
    assert (c.model, c.rate_mode, c.fading.kind, c.per_model, c.shadowing.enabled) == \
        ("seed", "shannon", "none", "none", False)
    assert (c.rsu_noise_figure_db, c.vehicle_noise_figure_db, sc.rsus.antenna_height_m) == (5.0, 9.0, 5.0)
    assert (c.interference.enabled, c.work_conserving, sc.backhaul.enabled) == (False, False, False)
    radio = build_radio(sc)
    assert radio.ideal_seed and not radio.errors.random and radio.backhaul is None


def test_every_key_parses_and_reaches_the_radio():
    sc = validate_tree({"name": "t", "channel": {
        "model": "tr37885_urban", "model_params": {"blocker_height_m": 3.0}, "los_correlation_m": 20.0,
        "shadowing": {"enabled": True}, "fading": {"kind": "rician", "k_factor": 3.0},
        "rate_mode": "shannon", "per": {"model": "waterfall"}, "max_retransmissions": 5, "on_arq_limit": "resend",
        "vehicle_antenna_gain_dbi": 3.0, "rsu_antenna_gain_dbi": 8.0, "rsu_noise_figure_db": 4.0,
        "vehicle_noise_figure_db": 7.0, "vehicle_antenna_height_m": 1.6,
        "interference": {"enabled": True, "activity": 0.3}, "work_conserving": True},
        "backhaul": {"enabled": True, "links": [{"a": "rsu0", "b": "agg"}, {"a": "rsu1", "b": "agg"},
                                               {"a": "rsu2", "b": "agg"},
                                               {"a": "agg", "b": "server", "latency_s": 0.005}]},
        "rsus": {"antenna_height_m": 6.0}}, "t.yaml")
    r = build_radio(sc)
    assert (r.model, r.model_params, r.antenna_gain_db, r.rate_mode) == \
        ("tr37885_urban", (("blocker_height_m", 3.0),), 11.0, "shannon")
    assert (r.rsu_noise_figure_db, r.vehicle_noise_figure_db, r.vehicle_height_m, r.rsu_height_m,
            r.los_correlation_m) == (4.0, 7.0, 1.6, 6.0, 20.0)
    assert (r.errors.per_model, r.errors.max_retransmissions, r.errors.fading, r.errors.k_factor) == \
        ("waterfall", 5, "rician", 3.0) and r.on_arq_limit == "resend"
    assert r.interference and r.interference_activity == 0.3 and r.work_conserving
    assert r.backhaul.latency_s("rsu1") == pytest.approx(0.006) and r.backhaul.hops("rsu1") == 2


def test_ergodic_fading_is_in_the_rate_not_the_packets():
    r = build_radio(_channel(fading={"kind": "rayleigh", "mode": "ergodic"}))
    assert r.fading == "rayleigh" and r.errors.fading == "none"


@pytest.mark.parametrize("channel, field, expected", [
    ({"model": "nope"}, "channel.model = 'nope'", "'seed', 'free_space'"),
    ({"fading": {"kind": "rician"}}, "channel.fading", "k_factor"),
    ({"fading": {"kind": "rayleigh", "k_factor": 1.0}}, "channel.fading", "unless kind is 'rician'"),
    ({"shadowing": {"enabled": True}}, "channel.shadowing", "no table defaults"),
    ({"model": "free_space", "model_params": {"h": 1.0}}, "channel.model_params", "unknown: ['h']"),
    ({"per": {"model": "ldpc"}}, "channel.per.model = 'ldpc'", "'auto', 'mcs'"),
    ({"per": {"model": "mcs"}}, "channel.per", "rate_mode 'mcs'"),
    ({"rate_mode": "mcs", "per": {"model": "waterfall"}}, "channel.per", "not 'waterfall'"),
    ({"model": "tr37885_highway", "buildings": "b.poly.xml"}, "channel.buildings", "tr37885_urban"),
    ({"model": "tr38901_umi", "model_params": {"bs_height_m": 12.0}}, "channel.model_params", "bs_height_m"),
    ({"noise_figure_db": 5.0}, "channel.noise_figure_db", "unknown"),
    ({"max_retransmissions": -1}, "channel.max_retransmissions = -1", "greater than or equal to 0"),
    ({"rate_mode": "mcs", "fading": {"kind": "rayleigh", "mode": "ergodic"}}, "channel.fading", "rate_mode"),
    ({"fading": {"kind": "rayleigh", "per_symbol": True}}, "channel.fading.per_symbol", "unknown keys"),
])
def test_errors_are_one_line_naming_file_field_value_expected(channel, field, expected):
    with pytest.raises(ScenarioError) as err:
        _channel(**channel)
    (line,) = err.value.lines
    assert line.startswith(f"t.yaml: {field}") and ": expected " in line and expected in line


def test_backhaul_must_reach_every_rsu():
    with pytest.raises(ScenarioError) as err:
        validate_tree({"name": "t", "backhaul": {"enabled": True, "links": [{"a": "rsu0", "b": "server"}]}}, "t.yaml")
    (line,) = err.value.lines
    assert line.startswith("t.yaml: backhaul = ") and "rsu1" in line and "rsu2" in line


def test_numeric_edge_ids_are_ids():
    # OSM edge ids are often numbers: YAML and --set read them as ints
    from cosim.scenario import RsuPlacementConfig

    assert RsuPlacementConfig(spacing_m=100.0, edges=[123, "-45", 7]).edges == ["123", "-45", "7"]
