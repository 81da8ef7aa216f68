"""SFLAM on the clock: quantized activations and gradients on the wire, subchannels with their own fading,
the prediction equal to the timeline when nothing moves, 32 bits equal to unquantized SFL-V2."""
from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from cosim.errors import ScenarioError, SettingError
from cosim.rng import RngStreams
from cosim.radio import RadioParams, RadioState
from cosim.wire import QuantizingCodec, activation_bytes
from split_testlib import run, tree

VEHICLES = [{"id": "near", "x_m": 60.0}, {"id": "mid", "x_m": 250.0}, {"id": "far", "x_m": 480.0}]
VIT = {"dataset": "digits", "image_size": 16, "model": "vit_micro", "batch_size": 32, "lr": 0.01, "momentum": 0.9,
       "arch": {"patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0}}
CURVE = {"a": 0.5, "b": 0.6, "c": 0.4}


def _sflam(subchannels=4, gpu_slots=3, **protocol):
    t = tree(vehicles=VEHICLES, learning=VIT,
             protocol={"scheme": "sflam", "cut": 1, "rounds": 2, "selection": "all", "accuracy_model": CURVE,
                       "max_latency_s": 5.0, **protocol})
    t["channel"] = {**t["channel"], "uplink_bandwidth_hz": 4e6, "downlink_bandwidth_hz": 4e6,
                    "vehicle_tx_power_w": 0.2, "subchannels": {"count": subchannels}}
    t["devices"] = {"server": {"flops_per_s": 1e11, "gpu_slots": gpu_slots}}
    return t


def _rows(tmp_path, name="run"):
    return pq.read_table(tmp_path / name / "decisions.parquet").to_pylist()


def test_sflam_prediction_is_the_timeline_on_assigned_subchannels(tmp_path):
    got = run(tmp_path, _sflam())
    assert [r["completed"] for r in got.rounds] == [3, 3]
    rows = _rows(tmp_path)
    elements = got.proto.context(1).profile.activation_elements
    for rnd in (0, 1):
        mine = [r for r in rows if r["round"] == rnd]
        assert len({r["subchannel"] for r in mine}) == 3                 # one subchannel each
    for r in rows:
        assert r["measured_latency_s"] == pytest.approx(r["predicted_latency_s"], rel=1e-9)   # nothing moves
        assert r["measured_energy_j"] == pytest.approx(r["predicted_energy_j"], rel=1e-9)
        assert r["predicted_latency_s"] <= 5.0 * (1 + 1e-9)
        assert 2 <= r["activation_bits"] <= 16 and r["bandwidth_share"] == 0.25
        assert r["efficiency_per_j"] == pytest.approx(r["predicted_accuracy"] / r["predicted_energy_j"])
        ups = [s for s in got.kind("tx.ul", r["vehicle"]) if s["payload"] == "activations" and s["round"] == r["round"]]
        # the quantized payload on the wire: q bits per element plus the 64-bit header, from the real tensor
        n = len(got.task.client_data(got.proto.sim.world.vehicles[r["vehicle"]].client))
        assert ups[0]["bytes"] == math.ceil((min(n, 32) * elements * r["activation_bits"] + 64) / 8)
    header = (tmp_path / "run" / "rounds.csv").read_text().splitlines()[0].split(",")
    assert {"objective", "bits_mean", "bits_min", "bits_max", "sca_iterations"} <= set(header)


def test_the_subchannel_fading_is_what_the_transfer_sees(tmp_path):
    """Same decisions, the other subchannel: the measured uplink time follows that subchannel's fading."""
    got = run(tmp_path, _sflam(rounds=1))
    radio = got.proto.sim.world.radio_state
    rows = _rows(tmp_path)
    for r in rows:
        fading = radio.subchannel_fading(r["vehicle"], 0)
        assert fading.shape == (4,) and np.all(fading > 0)
        ups = [s for s in got.kind("tx.ul", r["vehicle"]) if s["payload"] == "activations"]
        veh = got.proto.sim.world.vehicles[r["vehicle"]]
        from channel.link import rate_bps
        rate = rate_bps(radio.params.budget, "ul", r["tx_power_w"], veh.gain_linear * fading[r["subchannel"]], 1e6)
        assert ups[0]["t_end_s"] - ups[0]["t_start_s"] == pytest.approx(ups[0]["bytes"] * 8 / rate, rel=1e-9)


def test_subchannel_fading_is_per_vehicle_and_round_and_order_free():
    params = RadioParams(1e-4, 2.5, -174.0, subchannels=8, streams=RngStreams(5))
    import simpy
    a, b = RadioState(simpy.Environment(), params, 1), RadioState(simpy.Environment(), params, 1)
    x0 = a.subchannel_fading("x", 0).copy()
    b.subchannel_fading("y", 0)                       # another vehicle first: no effect on x
    assert np.array_equal(b.subchannel_fading("x", 0), x0)
    assert not np.array_equal(a.subchannel_fading("x", 1), x0)        # a new block each round
    draws = np.concatenate([a.subchannel_fading(f"v{i}", 3) for i in range(2000)])
    assert draws.mean() == pytest.approx(1.0, abs=0.03)            # unit-mean Rayleigh power gain
    assert np.var(draws) == pytest.approx(1.0, abs=0.08)


def test_32_bits_reproduce_unquantized_sfl_v2_bit_for_bit(tmp_path):
    """SFLAM at 32 bits with the baseline allocation trains exactly as SFL-V2 does."""
    t = _sflam(subchannels=0, optimizer="baseline", activation_bits=32)
    q = run(tmp_path, t, "sflam")
    plain = tree(vehicles=VEHICLES, learning=VIT, protocol={"scheme": "sfl_v2", "cut": 1, "rounds": 2,
                                                            "selection": "all"})
    plain["channel"], plain["devices"] = t["channel"], t["devices"]
    p = run(tmp_path, plain, "sfl_v2")
    for a, b in zip(q.rounds, p.rounds):
        assert (a["accuracy"], a["loss"], a["latency_s"], a["bytes_up"]) == (b["accuracy"], b["loss"], b["latency_s"],
                                                                             b["bytes_up"])
    for k, v in p.task.global_state.items():
        assert torch.equal(v, q.task.global_state[k])


@pytest.mark.parametrize("bits", [2, 8, 16])
def test_bytes_up_and_down_scale_with_the_bits(tmp_path, bits):
    got = run(tmp_path, _sflam(subchannels=0, optimizer="baseline", activation_bits=bits, gradient_bits=bits,
                               rounds=1))
    elements = got.proto.context(1).profile.activation_elements
    for veh in ("near", "mid", "far"):
        n = len(got.task.client_data(got.proto.sim.world.vehicles[veh].client))
        sizes = [min(32, n - i) for i in range(0, n, 32)]
        ups = [s["bytes"] for s in got.kind("tx.ul", veh) if s["payload"] == "activations"]
        downs = [s["bytes"] for s in got.kind("tx.dl", veh) if s["payload"] == "gradients"]
        expect = [math.ceil((b * elements * bits + 64) / 8) for b in sizes]
        assert ups == expect and downs == expect == [activation_bytes(b * elements, bits) for b in sizes]


def test_stochastic_rounding_is_reproducible_and_unbiased(tmp_path):
    t = _sflam(subchannels=0, optimizer="baseline", activation_bits=2, stochastic_rounding=True, rounds=1)
    a, b = run(tmp_path, t, "a"), run(tmp_path, t, "b")
    assert a.rounds[0]["loss"] == b.rounds[0]["loss"]
    det = run(tmp_path, {**t, "protocol": {**t["protocol"], "stochastic_rounding": False}}, "det")
    assert det.rounds[0]["loss"] != a.rounds[0]["loss"]
    x = torch.linspace(0, 1, 1001).repeat(400, 1)
    codec, dec = QuantizingCodec(), type("D", (), {"activation_bits": 2})()
    sent, _ = codec.encode(x, dec, torch.Generator().manual_seed(0))
    assert (sent.mean(0) - x[0]).abs().max() < 0.03                # E[Q(x)] = x
    assert (codec.encode(x, dec)[0] - x).abs().max() <= 1 / 6 + 1e-6   # nearest: half a step


@pytest.mark.parametrize("protocol,field", [
    ({"bits_min": 8, "bits_max": 4}, "bits_min"), ({"bits_max": 20}, "bits_max"),
    ({"accuracy_model": None}, "accuracy_model"), ({"accuracy_model_file": "nowhere.json", "accuracy_model": None},
                                                   "protocol.accuracy_model_file")])
def test_sflam_settings_that_do_not_fit_are_one_line(tmp_path, protocol, field):
    with pytest.raises(ScenarioError, match=field) as err:
        run(tmp_path, _sflam(**protocol))
    assert len(err.value.lines) == 1


def test_the_sflam_optimizer_needs_subchannels(tmp_path):
    with pytest.raises(SettingError, match="channel.subchannels.count"):
        run(tmp_path, _sflam(subchannels=0))
