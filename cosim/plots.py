"""Plots of a run directory (matplotlib, Agg): learning curve, measured vs predicted latency and energy."""
from __future__ import annotations

import csv
from pathlib import Path

from .errors import UserError


def _read_rounds(run_dir: Path) -> dict[str, list[float]]:
    path = run_dir / "rounds.csv"
    if not path.is_file():
        raise UserError(f"{path}: file not found: expected a run directory written by `cosim run`")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise UserError(f"{path}: no rounds: expected at least one completed round to plot")
    return {k: [float(r[k]) for r in rows] for k in rows[0]}


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write plots/rounds.png (accuracy, loss, latency, energy per round); returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    r = _read_rounds(run_dir)
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    fig, ax = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)
    ax[0, 0].plot(r["t_end_s"], r["accuracy"], marker=".")
    ax[0, 0].set(xlabel="simulated time [s]", ylabel="test accuracy", title="learning curve")
    ax[0, 1].plot(r["round"], r["loss"], marker=".")
    ax[0, 1].set(xlabel="round", ylabel="test loss", title="loss")
    ax[1, 0].plot(r["round"], r["latency_s"], marker=".", label="measured on the timeline")
    ax[1, 0].plot(r["round"], r["predicted_latency_s"], marker="x", ls="--", label="optimizer's prediction")
    ax[1, 0].set(xlabel="round", ylabel="round latency [s]", title="latency")
    ax[1, 0].legend()
    ax[1, 1].plot(r["round"], r["energy_j"], marker=".", label="measured")
    ax[1, 1].plot(r["round"], r["predicted_energy_j"], marker="x", ls="--", label="predicted")
    ax[1, 1].set(xlabel="round", ylabel="vehicle energy [J]", title="energy")
    ax[1, 1].legend()
    path = out / "rounds.png"
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return [path]
