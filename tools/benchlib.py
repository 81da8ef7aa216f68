"""What the bench scripts share: running a scenario through the co-simulator, timed."""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path

from cosim.run import run_scenario


def run_cosim(sc, workers: int = 1):
    """(wall seconds, RunResult) of one co-simulated run (`workers` training processes), its run directory
    thrown away; `result.digest` is a SHA-256 over its output files (wall-clock timings and the manifest
    left out), to show two runs wrote the same bytes; `result.timings` its timings.json."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_scenario(sc, Path(tmp) / "run", workers=workers)
        wall = time.perf_counter() - t0
        digest = hashlib.sha256()
        for path in sorted((Path(tmp) / "run").rglob("*")):
            if path.is_file() and path.name not in ("timings.json", "manifest.json"):
                digest.update(path.name.encode() + path.read_bytes())
        result.digest = digest.hexdigest()
        result.timings = json.loads((Path(tmp) / "run" / "timings.json").read_text())
        return wall, result
