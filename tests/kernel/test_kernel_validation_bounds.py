"""Scenario validation (issue 16): finite numbers, physical and resource bounds with their reason, an alias
budget in the YAML loader, safe names, SUMO extra_args that write nothing, "did you mean", errors of --set
overrides named as such, and a setting a run cannot honour said once. Validation only, but for the last."""
from __future__ import annotations

import math
import time
import warnings

import pytest
import yaml

from cosim.cli import main
from cosim.scenario import MAX_YAML_VALUES, safe_load, sumo_extra_args_problem, validate_tree
from tests.conftest import REPO

HW = str(REPO / "scenarios" / "highway" / "highway.sumocfg")


def _sumo(**sumo) -> dict:
    return {"name": "x", "mobility": {"source": "sumo", "sumo": {"config": HW, **sumo}}}


def _write(tmp_path, content, name: str = "bad.yaml") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return str(path)


def _one_line(capsys, args) -> str:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


CASES = [
    # (id, YAML text or tree, substrings the one line must contain)
    # 1. no NaN or inf
    ("nan-step", "name: x\nmobility: {step_s: .nan}\n", ["mobility.step_s = nan", "a finite number"]),
    ("inf-bandwidth", "name: x\nchannel: {uplink_bandwidth_hz: .inf}\n",
     ["channel.uplink_bandwidth_hz = inf", "a finite number"]),
    ("minus-inf-gain", "name: x\nchannel: {rsu_antenna_gain_dbi: -.inf}\n",
     ["channel.rsu_antenna_gain_dbi = -inf", "a finite number"]),
    ("nan-lr", "name: x\nlearning: {lr: .nan}\n", ["learning.lr = nan", "a finite number"]),
    ("inf-rsu-position", "name: x\nrsus: {positions_m: [[.inf, 0]]}\n", ["rsus.positions_m.0.0 = inf", "finite"]),
    ("nan-model-param", "name: x\nchannel: {model_params: {blocker_height_m: .nan}}\n",
     ["channel.model_params.blocker_height_m = nan", "a finite number"]),
    ("nan-in-union", "name: x\nprotocol: {scheme: genfv, generator: {options: {epochs: .nan}}}\n",
     ["protocol.generator.options.epochs = nan", "a finite number"]),
    ("nan-arch-knob", "name: x\nlearning: {arch: {width: .nan}}\n", ["learning.arch", "width: an integer"]),
    ("nan-scripted-x", "name: x\nmobility: {source: scripted, scripted: {vehicles: [{id: a, x_m: .nan}]}}\n",
     ["mobility.scripted.vehicles.0.x_m = nan", "a finite number"]),
    # 2. physical and resource bounds, with the reason
    ("tiny-step", {"name": "x", "mobility": {"step_s": 1e-9}}, ["mobility.step_s = 1e-09", "at least 0.001 s",
                                                                "never ends"]),
    ("huge-step", {"name": "x", "mobility": {"step_s": 3600}}, ["mobility.step_s", "at most 60 s", "coverage"]),
    ("long-highway", {"name": "x", "mobility": {"highway": {"length_m": 1e12}}},
     ["mobility.highway.length_m", "at most 1e6 m", "unit mistake"]),
    ("many-lanes", {"name": "x", "mobility": {"highway": {"lanes": 1000}}}, ["mobility.highway.lanes = 1000",
                                                                             "at most 16"]),
    ("fast-highway", {"name": "x", "mobility": {"highway": {"speed_max_mps": 120.0}}},
     ["mobility.highway.speed_max_mps = 120.0", "at most 70 m/s", "km/h"]),
    ("underflow-bandwidth", "name: x\nchannel: {downlink_bandwidth_hz: 1e-300}\n",
     ["channel.downlink_bandwidth_hz = 1e-300", "at least 1000 Hz", "SNR to inf"]),
    ("wide-bandwidth", {"name": "x", "channel": {"uplink_bandwidth_hz": 1e12}},
     ["channel.uplink_bandwidth_hz", "at most 1e10 Hz"]),
    ("big-power", {"name": "x", "channel": {"vehicle_tx_power_w": 1000.0}},
     ["channel.vehicle_tx_power_w = 1000.0", "at most 100 W", "50 dBm"]),
    ("big-gain", {"name": "x", "channel": {"vehicle_antenna_gain_dbi": 90.0}},
     ["channel.vehicle_antenna_gain_dbi = 90.0", "at most 60 dBi"]),
    ("negative-gain", {"name": "x", "channel": {"rsu_antenna_gain_dbi": -100.0}},
     ["channel.rsu_antenna_gain_dbi = -100.0", "at least -60 dBi"]),
    ("noise-density", {"name": "x", "channel": {"noise_dbm_per_hz": 0.0}},
     ["channel.noise_dbm_per_hz = 0.0", "at most -100 dBm/Hz"]),
    ("far-rsu", {"name": "x", "rsus": {"positions_m": [[1e300, 0.0]]}},
     ["rsus.positions_m.0.0 = 1e+300", "at most 1e7 m"]),
    ("far-scripted-vehicle", {"name": "x", "mobility": {"source": "scripted", "scripted": {
        "vehicles": [{"id": "a", "x_m": 0.0, "y_m": -1e9}]}}}, ["mobility.scripted.vehicles.0.y_m", "at least -1e7 m"]),
    ("image-size", {"name": "x", "learning": {"image_size": 4096}},
     ["learning.image_size = 4096", "at most 512 px", "hundreds of GB"]),
    ("arch-width", {"name": "x", "learning": {"arch": {"width": 100000}}},
     ["learning.arch", "width: at most 512", "width squared"]),
    ("arch-depth", {"name": "x", "learning": {"model": "vit_tiny", "arch": {"depth": 1000}}},
     ["learning.arch", "depth: at most 64"]),
    ("big-lr", {"name": "x", "learning": {"lr": 100.0}}, ["learning.lr = 100.0", "at most 10", "diverge"]),
    ("many-clients", {"name": "x", "learning": {"num_clients": 10**6}}, ["learning.num_clients", "at most 10000"]),
    ("many-rounds", {"name": "x", "protocol": {"rounds": 10**7}}, ["protocol.rounds = 10000000", "at most 100000"]),
    ("many-per-round", {"name": "x", "protocol": {"vehicles_per_round": 10**6}},
     ["protocol.vehicles_per_round", "at most 10000"]),
    ("many-initial-vehicles", {"name": "x", "mobility": {"highway": {"initial_vehicles": 10**7}}},
     ["mobility.highway.initial_vehicles", "at most 10000"]),
    ("long-duration", {"name": "x", "duration_s": 1e9}, ["duration_s = 1000000000.0", "at most 604800 s"]),
    ("too-many-ticks", {"name": "x", "duration_s": 600000, "mobility": {"step_s": 0.01}},
     ["mobility.step_s = 0.01", "at least 0.06 s with duration_s 600000 s", "10,000,000 ticks"]),
    ("device-range-bound", {"name": "x", "devices": {"vehicle": {"ranges": {"cpu_hz": [1.0, 2.0e9]}}}},
     ["devices.vehicle.ranges", "cpu_hz [1, 2e9] with each end at least 1e6 Hz"]),
    ("big-seed", {"name": "x", "seed": 2**40}, ["seed = 1099511627776", "32-bit"]),
    ("lora-alpha", {"name": "x", "protocol": {"scheme": "fed_lora", "lora": {"alpha": 1e9}}},
     ["protocol.lora.alpha", "at most 10000"]),
    ("genfv-energy", {"name": "x", "protocol": {"scheme": "genfv", "energy_budget_j": 1e12}},
     ["protocol.energy_budget_j", "at most 1e6 J"]),
    # 4. a name safe as a folder name
    ("name-escapes", {"name": "../../../escaped"}, ["name = '../../../escaped'", "safe as a folder name"]),
    ("name-300", {"name": "a" * 300}, ["name = 'aaaa", "1 to 100"]),
    ("name-absolute", {"name": "/tmp/x"}, ["name = '/tmp/x'", "safe as a folder name"]),
    ("name-dots", {"name": "a..b"}, ["name = 'a..b'", "no '..'"]),
    # 5. SUMO extra_args: options that write nothing
    ("sumo-fcd-output", _sumo(extra_args=["--fcd-output", "x.xml"]),
     ["mobility.sumo.extra_args", "'--fcd-output'", "write files", "allowed: --step-method.ballistic",
      "--time-to-teleport"]),
    ("sumo-log", _sumo(extra_args=["--log", "sumo.log"]), ["'--log'", "write files"]),
    ("sumo-error-log", _sumo(extra_args=["--error-log=e.txt"]), ["'--error-log=e.txt'"]),
    ("sumo-save-state", _sumo(extra_args=["--save-state.times", "10"]), ["'--save-state.times'"]),
    ("sumo-configuration", _sumo(extra_args=["-c", "other.sumocfg"]), ["'-c'"]),
    ("sumo-seed", _sumo(extra_args=["--seed", "3"]), ["'--seed'", "change what cosim sets"]),
    ("sumo-value-first", _sumo(extra_args=["5"]), ["'5'", "an option name"]),
    ("sumo-bad-word", _sumo(extra_args=["--collision.action", "explode"]),
     ["one of none, warn, teleport, remove after --collision.action", "'explode'"]),
    ("sumo-bad-number", _sumo(extra_args=["--time-to-teleport", "soon"]),
     ["a finite number (seconds) after --time-to-teleport", "'soon'"]),
    ("sumo-missing-value", _sumo(extra_args=["--max-depart-delay"]), ["a value after --max-depart-delay"]),
    ("sumo-misspelt", _sumo(extra_args=["--time-to-teleprot", "5"]), ["did you mean '--time-to-teleport'?"]),
    # 6. did you mean
    ("mean-top-key", {"name": "x", "roundz": 3}, ["roundz = 3", "unknown keys", "did you mean 'protocol.rounds'?"]),
    ("mean-nested-key", {"name": "x", "mobility": {"sorce": "sumo"}},
     ["mobility.sorce", "did you mean 'source'?"]),
    ("mean-protocol-key", {"name": "x", "protocol": {"roundz": 3}}, ["protocol.roundz", "did you mean 'rounds'?"]),
    ("mean-scheme-key", {"name": "x", "protocol": {"scheme": "sl", "cut": 1, "activation_bit": 8}},
     ["protocol.activation_bit", "did you mean 'activation_bits'?"]),
    ("mean-literal", {"name": "x", "learning": {"partition": {"kind": "dirichlett"}}},
     ["learning.partition.kind = 'dirichlett'", "did you mean 'dirichlet'?"]),
    ("mean-model", {"name": "x", "learning": {"model": "resnet"}}, ["did you mean 'resnet18'?"]),
    ("mean-scheme", {"name": "x", "protocol": {"scheme": "fedavgg"}}, ["protocol.scheme = 'fedavgg'",
                                                                      "did you mean 'fedavg'?"]),
    ("mean-selection", {"name": "x", "protocol": {"selection": "dwel"}}, ["did you mean 'dwell'?"]),
    ("mean-optimizer", {"name": "x", "protocol": {"optimizer": "baselin"}}, ["did you mean 'baseline'?"]),
    ("mean-arch-knob", {"name": "x", "learning": {"arch": {"widht": 8}}}, ["did you mean 'width'?"]),
]


@pytest.mark.parametrize("case_id,content,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_value_gives_one_line_with_the_bound_and_why(tmp_path, capsys, case_id, content, needles):
    path = _write(tmp_path, content)
    line = _one_line(capsys, ["validate", path])
    assert line.startswith(path + ": "), line
    for needle in needles:
        assert needle in line, (needle, line)


def test_loader_float_rule_still_reads_inf_nan_and_tiny_numbers():
    tree = safe_load("a: .inf\nb: -.inf\nc: .nan\nd: 1e-300\ne: 5.9e9\nf: 20e6\n")
    assert tree["a"] == math.inf and tree["b"] == -math.inf and math.isnan(tree["c"])
    assert tree["d"] == 1e-300 and tree["e"] == 5.9e9 and tree["f"] == 20e6


def test_values_at_the_bounds_pass():
    tree = {"name": "A-b_c.1", "mobility": {"step_s": 0.001, "highway": {"length_m": 1e6, "speed_max_mps": 70.0}},
            "duration_s": 600, "channel": {"uplink_bandwidth_hz": 1e3, "vehicle_tx_power_w": 100.0,
                                           "rsu_antenna_gain_dbi": -60.0},
            "learning": {"image_size": 512, "lr": 10.0, "arch": {"width": 512}}, "protocol": {"rounds": 100000}}
    sc = validate_tree(tree, "edge.yaml")
    assert sc.mobility.step_s == 0.001 and sc.learning.image_size == 512


def test_allowed_sumo_extra_args_validate():
    args = ["--time-to-teleport", "-1", "--collision.action", "warn", "--no-warnings", "--ignore-route-errors=true",
            "--device.rerouting.probability", "0.5", "--routing-algorithm=astar", "--default.speeddev", "0.1",
            "--step-method.ballistic", "--max-depart-delay", "30", "--lateral-resolution", "0.8"]
    assert sumo_extra_args_problem(args) is None
    sc = validate_tree(_sumo(extra_args=args), "ok.yaml")
    assert sc.mobility.sumo.extra_args == args


def test_alias_bomb_is_refused_quickly_naming_the_file(tmp_path, capsys):
    lol = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    levels = [f"a: &a {lol}"] + [f"{b}: &{b} [{','.join(['*' + a] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
    text = "\n".join(levels) + "\n"
    assert len(text.encode()) < 400            # a few hundred bytes that expand to 9**9 values
    path = _write(tmp_path, text)
    t0 = time.perf_counter()
    line = _one_line(capsys, ["validate", path])
    assert time.perf_counter() - t0 < 5.0
    assert line.startswith(path + ": ") and "aliases" in line and str(MAX_YAML_VALUES) in line, line


def test_many_aliases_are_refused_and_a_few_are_fine(tmp_path, capsys):
    many = "base: &b 1\nl: [" + ", ".join(["*b"] * 200) + "]\nname: x\n"
    line = _one_line(capsys, ["validate", _write(tmp_path, many)])
    assert "more than 100 aliases" in line and "line" in line, line
    few = "name: x\nrsus:\n  positions_m: [&p [0.0, -10.0], *p]\n"
    assert main(["validate", _write(tmp_path, few, "few.yaml")]) == 0


def test_recursive_alias_is_refused(tmp_path, capsys):
    line = _one_line(capsys, ["validate", _write(tmp_path, "name: x\nloop: &l [*l]\n")])
    assert "refers to itself" in line, line


# 7. errors of --set name --set; a folder or a missing file says so
@pytest.mark.parametrize("override,needles", [
    ("protocol.rounds=abc", ["--set: protocol.rounds = 'abc'", "integer"]),
    ("protocol.roundz=3", ["--set: protocol.roundz = 3", "did you mean 'rounds'?"]),
    ("mobility.step_s=1e-9", ["--set: mobility.step_s = 1e-09", "at least 0.001 s"]),
    ("learning=5", ["--set: learning = 5"]),
    ("name.sub=1", ["--set: name.sub = 'ok'", "a mapping to set a sub-key in"]),
])
def test_override_errors_name_set_not_the_file(tmp_path, capsys, override, needles):
    path = _write(tmp_path, {"name": "ok"})
    line = _one_line(capsys, ["validate", path, "--set", override])
    assert line.startswith("--set: "), line
    for needle in needles:
        assert needle in line, (needle, line)


def test_an_override_that_breaks_its_section_names_both(tmp_path, capsys):
    path = _write(tmp_path, {"name": "ok"})
    line = _one_line(capsys, ["validate", path, "--set", "mobility.source=fcd"])
    assert line.startswith(f"{path} with --set: mobility = ") and "a mobility.fcd section" in line, line


def test_override_missing_file_names_set_and_file_errors_name_the_file(tmp_path, capsys):
    path = _write(tmp_path, {"name": "ok", "mobility": {"source": "fcd", "fcd": {"file": "here.xml"}}})
    (tmp_path / "here.xml").write_text("<fcd-export/>")
    line = _one_line(capsys, ["validate", path, "--set", "mobility.fcd.file=gone.xml"])
    assert line.startswith("--set: mobility.fcd.file = 'gone.xml'") and "an existing file" in line, line
    bad = _write(tmp_path, {"name": "ok", "seed": -1}, "bad2.yaml")
    line = _one_line(capsys, ["validate", bad, "--set", "protocol.rounds=3"])
    assert line.startswith(bad + ": seed = -1"), line


def test_a_folder_or_a_missing_file_as_the_scenario(tmp_path, capsys):
    line = _one_line(capsys, ["validate", str(tmp_path)])
    assert line == f"{tmp_path}: is a folder: expected a scenario .yaml file"
    line = _one_line(capsys, ["run", str(tmp_path), "--quiet"])
    assert "is a folder" in line
    line = _one_line(capsys, ["validate", str(tmp_path / "absent.yaml")])
    assert "absent.yaml" in line and "file not found" in line


# 9. a setting a run cannot honour is said once
def test_more_vehicles_per_round_than_covered_warns_once(tmp_path):
    from cosim.protocols.config import SettingWarning
    from cosim.run import run_scenario

    tree = {"name": "short", "seed": 1, "duration_s": 20,
            "mobility": {"source": "scripted", "scripted": {"vehicles": [{"id": "a", "x_m": 0.0},
                                                                         {"id": "b", "x_m": 10.0}]}},
            "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 200.0},
            "learning": {"num_clients": 2, "arch": {"width": 2}},
            "protocol": {"rounds": 2, "vehicles_per_round": 500}}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_scenario(validate_tree(tree, "short.yaml"), tmp_path / "run")
    said = [w for w in caught if issubclass(w.category, SettingWarning)]
    assert len(said) == 1, [str(w.message) for w in caught]
    assert str(said[0].message).startswith("protocol.vehicles_per_round = 500: round 0 had only 2 covered vehicles")
