"""Every scenario error path gives one line naming file, field and value, and exit code 2."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cosim.cli import main
from tests.conftest import REPO

GOOD = {"name": "ok"}
HW = str(REPO / "scenarios" / "highway" / "highway.sumocfg")
SUMO_HW = {"name": "x", "mobility": {"source": "sumo", "sumo": {"config": HW}}}

CASES = [
    # (id, YAML text or tree, extra CLI args, substrings the one line must contain)
    ("wrong-type-seed", {"name": "x", "seed": "abc"}, [], ["seed", "'abc'", "integer"]),
    ("negative-duration", {"name": "x", "duration_s": -5}, [], ["duration_s", "-5", "greater than 0"]),
    ("zero-step", {"name": "x", "mobility": {"step_s": 0}}, [], ["mobility.step_s", "0", "greater than 0"]),
    ("unknown-top-key", {"name": "x", "roundz": 3}, [], ["roundz", "3", "unknown keys"]),
    ("unknown-nested-key", {"name": "x", "mobility": {"speed": 3}}, [], ["mobility.speed", "unknown keys"]),
    ("negative-lr", {"name": "x", "learning": {"lr": -0.1}}, [], ["learning.lr", "-0.1", "greater than 0"]),
    ("test-fraction", {"name": "x", "learning": {"test_fraction": 1.5}}, [], ["learning.test_fraction", "1.5"]),
    ("bad-enum", {"name": "x", "learning": {"partition": {"kind": "bogus"}}}, [],
     ["learning.partition.kind", "'bogus'", "'iid'"]),
    ("float-for-int", {"name": "x", "protocol": {"rounds": 2.5}}, [], ["protocol.rounds", "2.5", "integer"]),
    ("missing-name", {"seed": 1}, [], ["name", "missing", "required"]),
    ("rsu-point-3d", {"name": "x", "rsus": {"positions_m": [[1, 2, 3]]}}, [], ["rsus.positions_m.0", "[1, 2, 3]"]),
    ("no-rsus", {"name": "x", "rsus": {"positions_m": []}}, [], ["rsus.positions_m", "[]", "at least 1"]),
    ("speed-range", {"name": "x", "mobility": {"highway": {"speed_min_mps": 40, "speed_max_mps": 30}}}, [],
     ["mobility.highway", "speed_min_mps"]),
    ("sumo-without-section", {"name": "x", "mobility": {"source": "sumo"}}, [], ["mobility", "mobility.sumo section"]),
    ("sumo-missing-file", {"name": "x", "mobility": {"source": "sumo", "sumo": {"config": "nope.sumocfg"}}}, [],
     ["mobility.sumo.config", "'nope.sumocfg'", "existing file"]),
    ("fcd-missing-file", {"name": "x", "mobility": {"source": "fcd", "fcd": {"file": "gone.xml"}}}, [],
     ["mobility.fcd.file", "'gone.xml'", "existing file"]),
    ("scripted-empty", {"name": "x", "mobility": {"source": "scripted", "scripted": {"vehicles": []}}}, [],
     ["mobility.scripted.vehicles", "[]", "at least 1"]),
    ("negative-deadline", {"name": "x", "protocol": {"round_deadline_s": -1}}, [],
     ["protocol.round_deadline_s", "-1"]),
    ("set-bad-value", GOOD, ["--set", "protocol.rounds=abc"], ["protocol.rounds", "'abc'", "integer"]),
    ("set-without-equals", GOOD, ["--set", "protocol.rounds"], ["--set", "key.path=value"]),
    ("set-unknown-key", GOOD, ["--set", "protocol.roundz=3"], ["protocol.roundz", "unknown keys"]),
    ("empty-yaml", "", [], ["file is empty", "mapping"]),
    ("non-mapping-list", "- 1\n- 2\n", [], ["<top level>", "[1, 2]", "mapping"]),
    ("non-mapping-scalar", "42\n", [], ["<top level>", "42", "mapping"]),
    ("yaml-syntax", "name: [unclosed\n", [], ["YAML syntax error", "line"]),
    ("tab-indent", "name: x\nprotocol:\n\trounds: 3\n", [], ["YAML syntax error"]),
    ("duplicate-key", "name: x\nrsus: {coverage_radius_m: 100}\nseed: 2\nrsus: {coverage_radius_m: 200}\n", [],
     ["line 4", "duplicate key 'rsus' (first on line 2)"]),
    ("placement-without-sumo", {"name": "x", "rsus": {"placement": {"spacing_m": 100}}}, [],
     ["rsus.placement", "{'spacing_m': 100.0}", "mobility.source 'sumo'"]),
    ("route-dwell-without-sumo", {"name": "x", "protocol": {"dwell_predictor": "route"}}, [],
     ["protocol.dwell_predictor = 'route'", "'kinematic' or 'oracle'"]),
    ("unknown-optimizer", {"name": "x", "protocol": {"optimizer": "magic"}}, [],
     ["protocol.optimizer = 'magic'", "a registered optimizer", "'baseline'"]),
    ("unknown-selection", {"name": "x", "protocol": {"selection": "best"}}, [],
     ["protocol.selection = 'best'", "'dwell_fit'"]),
    ("unknown-scheme", {"name": "x", "protocol": {"scheme": "asfl2"}}, [],
     ["protocol.scheme = 'asfl2'", "a registered scheme", "'sfl_v1'"]),
    ("split-key-on-fedavg", {"name": "x", "protocol": {"activation_bits": 8}}, [],
     ["protocol.activation_bits = 8", "no such key for scheme 'fedavg'"]),
    ("device-range-key", {"name": "x", "devices": {"vehicle": {"ranges": {"ram_gb": [1, 2]}}}}, [],
     ["devices.vehicle.ranges", "'cpu_hz'", "ram_gb"]),
    ("device-range-order", {"name": "x", "devices": {"vehicle": {"ranges": {"cpu_hz": [2.0e9, 1.0e9]}}}}, [],
     ["devices.vehicle.ranges", "low <= high"]),
    ("device-min-clock", {"name": "x", "devices": {"vehicle": {"cpu_hz": 1.0e9, "min_cpu_hz": 2.0e9}}}, [],
     ["devices.vehicle", "min_cpu_hz"]),
    ("power-range", {"name": "x", "channel": {"vehicle_tx_power_w": 0.1, "vehicle_min_tx_power_w": 0.5}}, [],
     ["channel.vehicle_min_tx_power_w = 0.5", "at most vehicle_tx_power_w"]),
    ("sumo-step-resolution", {"name": "x", "mobility": {"source": "sumo", "step_s": 0.0005, "sumo": {"config": HW}}},
     [], ["mobility.step_s", "0.0005", "multiple of 0.001 s"]),
]


def _write(tmp_path, content) -> str:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return str(path)


@pytest.mark.parametrize("case_id,content,extra,needles", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_scenario_gives_one_line_and_exit_2(tmp_path, capsys, case_id, content, extra, needles, command):
    path = _write(tmp_path, content)
    code = main([command, path, *extra, *(["--quiet", "--out", str(tmp_path / "o")] if command == "run" else [])])
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in ["--set" if case_id.startswith("set-") else path, *needles]:
        assert needle in lines[0], (needle, lines[0])


def test_missing_scenario_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "absent.yaml"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "absent.yaml" in err and "not found" in err


def test_validate_prints_every_error(tmp_path, capsys):
    path = _write(tmp_path, {"name": "x", "seed": -1, "duration_s": 0, "learning": {"lr": 0}})
    assert main(["validate", path]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(path) for line in lines)


def test_impossible_setting_found_at_build_time(tmp_path, capsys):
    path = _write(tmp_path, {"name": "x", "learning": {"num_clients": 5000}})
    assert main(["run", path, "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "learning.num_clients = 5000" in err and path in err


@pytest.mark.parametrize("placement,needles", [
    ({"spacing_m": 1000, "edges": ["fwd", "nope"]}, ["rsus.placement.edges.1 = 'nope'", "an edge id of", "fwd"]),
    ({"spacing_m": 1e6}, ["rsus.placement.spacing_m = 1000000.0", "at most", "longest path is"]),
    ({"spacing_m": 100, "first_m": 1e6, "edges": ["fwd"]}, ["rsus.placement.first_m", "the edges given is"])])
def test_rsu_placement_impossible_on_the_net(tmp_path, capsys, placement, needles):
    tree = {**SUMO_HW, "rsus": {"placement": placement}}
    path = _write(tmp_path, tree)
    assert main(["run", path, "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(path) and all(n in err for n in needles), err


@pytest.mark.parametrize("args,needles", [
    (["urban_grid", "--grid-n", "1"], ["cosim scenario build urban_grid: --grid-n = 1: expected >= 2"]),
    (["highway", "--vehicles-per-hour", "0"], ["--vehicles-per-hour = 0.0: expected > 0"]),
    (["highway", "--out", "/proc/no/such"], ["--out = '/proc/no/such'", "a folder it can write"])])
def test_scenario_builder_parameters(tmp_path, capsys, args, needles):
    out = [] if "--out" in args else ["--out", str(tmp_path / "b")]
    assert main(["scenario", "build", *args, *out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and all(n in err for n in needles), err


def test_console_script_exit_code_and_no_traceback(tmp_path):
    path = _write(tmp_path, {"name": "x", "duration_s": -1})
    proc = subprocess.run([sys.executable, "-m", "cosim.cli", "run", path], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{path}: duration_s = -1: expected greater than 0"


def test_shipped_scenarios_validate():
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        assert main(["validate", str(path)]) == 0, path


@pytest.mark.parametrize("command", [["run"], ["sweep", "--vary", "seed=1,2"]])
def test_an_out_folder_that_cannot_be_made_fails_before_running(tmp_path, capsys, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = main([command[0], _write(tmp_path, GOOD), *command[1:], "--out", str(blocker / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "--out" in err and "a folder it can write" in err
