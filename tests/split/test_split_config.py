"""Split settings: the cut is checked against the model, data files are looked for where the scenario says,
and every mistake is one line with exit 2."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from cosim.cli import main
from cosim.errors import SettingError
from cosim.scenario import load_scenario
from split_testlib import BASE, run, tree
from tests.conftest import REPO


def _write(tmp_path, t, name="s.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(t))
    return str(path)


def _one_line_exit_2(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("model,arch,cut,points", [("cnn", {}, 4, "[1, 2, 3]"), ("cnn", {}, 0, "[1, 2, 3]"),
                                                   ("resnet18", {"width": 2}, 10, "[1, 2, 3, 4, 5, 6, 7, 8, 9]")])
def test_cut_outside_the_models_split_points(tmp_path, capsys, model, arch, cut, points):
    path = _write(tmp_path, tree(learning={"model": model, "arch": arch, "image_size": 16},
                                 protocol={"scheme": "sfl_v1", "cut": cut}))
    line = _one_line_exit_2(capsys, ["run", path, "--quiet", "--out", str(tmp_path / "o")])
    assert line.startswith(f"{path}: protocol.cut = {cut}: expected a split point of {model}: one of {points}")


def test_cut_error_is_a_setting_error(tmp_path):
    with pytest.raises(SettingError, match="protocol.cut"):
        run(tmp_path, tree(protocol={"scheme": "sl", "cut": 7}))


@pytest.mark.parametrize("protocol,needles", [
    ({"scheme": "sl"}, ["protocol.cut", "None", "split point"]),
    ({"scheme": "fedavg", "cut": 2}, ["protocol.cut", "no such key for scheme 'fedavg'", "sfl_v1"]),
    ({"scheme": "sfl_v1", "cut": 1, "activation_bits": 20}, ["protocol.activation_bits", "20", "1..16"]),
    ({"scheme": "sfl_v2", "cut": 1, "batches_per_round": 0}, ["protocol.batches_per_round", "0"]),
    ({"scheme": "sfl_v3", "cut": 1}, ["protocol.scheme", "'sfl_v3'", "'sfl_v2'"]),
])
def test_bad_split_settings_are_one_line(tmp_path, capsys, protocol, needles):
    t = {**BASE, "protocol": {**protocol}}
    line = _one_line_exit_2(capsys, ["validate", _write(tmp_path, t)])
    for needle in needles:
        assert needle in line, (needle, line)


@pytest.mark.parametrize("learning,needles", [
    ({"dataset": "cifar10"}, ["learning.data_dir", "None", "cifar10 files"]),
    ({"model": "cnn", "arch": {"depth": 3}}, ["learning.arch", "width", "depth"]),
    ({"model": "resnet50"}, ["learning.model", "'resnet50'", "'resnet18'"]),
    ({"dataset": "svhn", "data_dir": "x"}, ["learning.dataset", "'svhn'", "'gtsrb'"]),
    ({"devices": 1}, ["learning.devices", "unknown keys"]),
])
def test_bad_learning_settings_are_one_line(tmp_path, capsys, learning, needles):
    line = _one_line_exit_2(capsys, ["validate", _write(tmp_path, {**BASE, "learning": learning})])
    for needle in needles:
        assert needle in line, (needle, line)


def test_bad_device_settings_are_one_line(tmp_path, capsys):
    t = {**BASE, "devices": {"vehicle": {"kind": "tpu"}, "server": {"gpu_slots": 0}}}
    assert main(["validate", _write(tmp_path, t)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    assert "devices.vehicle.kind = 'tpu'" in lines[0] and "devices.server.gpu_slots = 0" in lines[1]


def test_model_that_does_not_fit_the_images(tmp_path, capsys):
    path = _write(tmp_path, tree(learning={"model": "vit_micro", "arch": {"patch_size": 3}}))
    line = _one_line_exit_2(capsys, ["run", path, "--quiet", "--out", str(tmp_path / "o")])
    assert "learning.arch = {'patch_size': 3}" in line and "multiple of patch_size" in line


def test_missing_data_files_name_the_expected_file(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    path = _write(tmp_path, tree(learning={"dataset": "mnist", "data_dir": "data"}))
    line = _one_line_exit_2(capsys, ["run", path, "--quiet", "--out", str(tmp_path / "o")])
    assert line.startswith(f"{path}: learning.data_dir = 'data': expected the mnist files")
    assert "train-images-idx3-ubyte" in line and str(tmp_path / "data") in line


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_file_data_set_relative_to_the_scenario_runs_split(tmp_path, capsys):
    """A fake MNIST (official train/test files) in a folder next to the scenario, resized to 12x12."""
    rng = np.random.default_rng(0)
    data = tmp_path / "scen" / "mnist"
    data.mkdir(parents=True)
    for prefix, n in (("train", 80), ("t10k", 20)):
        _write_idx(data / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(data / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    path = _write(tmp_path / "scen", tree(learning={"dataset": "mnist", "data_dir": "mnist", "image_size": 12},
                                          protocol={"scheme": "sfl_v2", "cut": 2, "rounds": 1}))
    assert main(["run", path, "--quiet", "--out", str(tmp_path / "o")]) == 0, capsys.readouterr().err
    rows = (tmp_path / "o" / "rounds.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].split(",")[4] == "1"          # one vehicle completed


def test_shipped_split_scenarios_validate_and_name_their_cut():
    paths = sorted(REPO.glob("scenarios/sl_*.yaml")) + sorted(REPO.glob("scenarios/sfl_*.yaml"))
    assert {p.name for p in paths} >= {"sl_digits.yaml", "sfl_v1_digits.yaml", "sfl_v2_digits.yaml",
                                       "sfl_resnet18.yaml"}
    for path in paths:
        sc = load_scenario(path)
        assert sc.protocol.scheme in ("sl", "sfl_v1", "sfl_v2") and sc.protocol.cut is not None
