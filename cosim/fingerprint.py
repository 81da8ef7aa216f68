"""What a run read, by content: a SHA-256 per input file (net, routes, .sumocfg and the files it names, FCD,
buildings, calibration, checkpoint, local data set files), keyed by the field that names it, so the
fingerprint is the same on any machine. `cosim sweep --resume` keeps a run only while it still matches."""
from __future__ import annotations

import hashlib
from pathlib import Path

from .scenario import Scenario, _path_values

_CHUNK_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def input_files(sc: Scenario) -> dict[str, Path]:
    """{key: file} for every file the scenario reads; a key is the field (plus the file's place below it)."""
    files: dict[str, Path] = {}
    for field, value in _path_values(sc):
        path = sc.path(value)
        files[field] = path
        if field == "mobility.sumo.config" and path.is_file():
            from mobility.sumo_live import _cfg_inputs      # the .sumocfg reader SUMO runs use

            try:
                named = _cfg_inputs(path)
            except ValueError:                      # malformed: the run itself says so
                named = {}
            for role, paths in named.items():
                for i, p in enumerate(paths):
                    files[f"{field}:{role}.{i}"] = p
    pre = getattr(sc.learning, "pretrained", None)
    if pre is not None and getattr(pre, "checkpoint", None):
        files["learning.pretrained.checkpoint"] = sc.path(pre.checkpoint)
    if sc.learning.data_dir is not None:
        root = sc.path(sc.learning.data_dir)
        if root.is_dir():
            for p in sorted(q for q in root.rglob("*") if q.is_file()):
                files[f"learning.data_dir:{p.relative_to(root).as_posix()}"] = p
    return files


def fingerprint(sc: Scenario) -> dict[str, str]:
    """{key: sha256} of every input file that exists (a missing one is the run's own error to report)."""
    return {key: sha256_file(path) for key, path in sorted(input_files(sc).items()) if path.is_file()}
