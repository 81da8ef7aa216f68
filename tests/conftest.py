"""Shared fixtures: small scenarios written to tmp_path."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def write_yaml(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@pytest.fixture
def scenario_file(tmp_path):
    """Factory: scenario_file(tree) -> path of a YAML file holding tree."""
    def make(tree: dict, name: str = "scenario.yaml") -> Path:
        return write_yaml(tmp_path / name, tree)
    return make
