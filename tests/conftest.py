"""Shared fixtures: small scenarios written to tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

# two scripted vehicles and one RSU: a run in well under a second (sweeps and executors run many)
TWO_VEHICLES = {
    "name": "tiny", "seed": 3, "duration_s": 60,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": 100.0, "speed_mps": 0.0}, {"id": "b", "x_m": 470.0, "speed_mps": 20.0}]}},
    "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0},
    "learning": {"num_clients": 4},
    "protocol": {"rounds": 2, "vehicles_per_round": 2, "selection": "all", "round_deadline_s": 20},
}


def write_yaml(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@pytest.fixture
def scenario_file(tmp_path):
    """Factory: scenario_file(tree) -> path of a YAML file holding tree."""
    def make(tree: dict, name: str = "scenario.yaml") -> Path:
        return write_yaml(tmp_path / name, tree)
    return make


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests use tiny tensors: one intra-op thread is fastest and immune to a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
