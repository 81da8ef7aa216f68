"""`cosim calibrate quant`: the fit recovers a known curve; the command trains at each bit width, writes a
calibration file an SFLAM scenario loads, and bad inputs are one line with exit 2."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "split"))
from split_testlib import tree  # noqa: E402

from cosim.calibrate import curve, fit_curve  # noqa: E402
from cosim.cli import main  # noqa: E402
from cosim.scenario import load_scenario  # noqa: E402


def test_fit_recovers_a_known_curve():
    q = [1, 2, 3, 4, 6, 8, 16, 32]
    a, b, c = fit_curve(q, list(curve(q, 0.7, 0.45, 0.2)))
    assert (a, b, c) == pytest.approx((0.7, 0.45, 0.2), rel=1e-6, abs=1e-8)


def _scenario(tmp_path: Path) -> Path:
    t = tree(vehicles=[{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": 300.0}],
             learning={"image_size": 16, "model": "vit_micro", "batch_size": 32,
                       "arch": {"patch_size": 4, "embed_dim": 16, "depth": 1, "num_heads": 2, "mlp_ratio": 2.0}},
             protocol={"scheme": "sflam", "cut": 1, "rounds": 1, "selection": "all",
                       "accuracy_model": {"a": 0.5, "b": 0.5, "c": 0.3}})
    t["channel"] = {**t["channel"], "subchannels": {"count": 2}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(t))
    return path


def test_calibrate_writes_a_file_an_sflam_scenario_loads(tmp_path):
    path = _scenario(tmp_path)
    out, file = tmp_path / "cal", tmp_path / "fit.json"
    assert main(["calibrate", "quant", str(path), "--bits", "2,8,32", "--tail", "1", "--out", str(out),
                 "--file", str(file)]) == 0
    data = json.loads(file.read_text())
    assert data["format"] == "cosim.quant-calibration/1" and [p["bits"] for p in data["points"]] == [2, 8, 32]
    assert all(0.0 <= p["accuracy"] <= 1.0 for p in data["points"]) and np.isfinite([data["a"], data["b"], data["c"]]).all()
    assert (out / "calibrate.png").is_file() and len((out / "calibrate.csv").read_text().splitlines()) == 4
    sc = load_scenario(path, ["protocol.accuracy_model=null", f"protocol.accuracy_model_file={file}"])
    assert sc.protocol.accuracy_model_file == str(file)


@pytest.mark.parametrize("args,needle", [(["--bits", "2,40"], "--bits"), (["--bits", "2,8"], "at least 3"),
                                         (["--bits", "x"], "comma-separated")])
def test_calibrate_bad_inputs_are_one_line(tmp_path, capsys, args, needle):
    assert main(["calibrate", "quant", str(_scenario(tmp_path)), "--out", str(tmp_path / "c"),
                 "--file", str(tmp_path / "f.json"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
