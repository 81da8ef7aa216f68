"""What the bench scripts share: running a scenario through the co-simulator, timed."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from cosim.run import run_scenario


def run_cosim(sc):
    """(wall seconds, RunResult) of one co-simulated run, its run directory thrown away."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_scenario(sc, Path(tmp) / "run")
        return time.perf_counter() - t0, result
