"""Plots of a run directory (matplotlib, Agg): learning curve, measured vs predicted latency and energy,
and predicted vs realized dwell times; of a sweep directory: every run's curves side by side."""
from __future__ import annotations

import csv
import math
from contextlib import contextmanager
from pathlib import Path

from mobility.errors import one_line

from .errors import UserError

# what a damaged file of a run raises as it is read or used (csv.Error, a number that is not one, a missing
# column, bytes that are not UTF-8, a truncated Parquet footer: pyarrow's errors are ValueError or OSError)
_DAMAGED = (ValueError, KeyError, TypeError, IndexError, OSError, csv.Error)


@contextmanager
def _reading(path: Path):
    """Turn a damaged file into one line naming it."""
    try:
        yield
    except UserError:
        raise
    except _DAMAGED as exc:
        raise UserError(f"{path}: unreadable ({type(exc).__name__}: {one_line(exc, 120)}): expected the file as "
                        "`cosim run` writes it") from None


def _read_rounds(run_dir: Path) -> dict[str, list[float]]:
    path = run_dir / "rounds.csv"
    if not path.is_file():
        raise UserError(f"{path}: file not found: expected a run directory written by `cosim run`")
    with _reading(path):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise UserError(f"{path}: no rounds: expected at least one completed round to plot")
        return {k: [float(r[k]) for r in rows] for k in rows[0]}


def _run_title(run_dir: Path) -> str:
    """'name, seed N' from the run's manifest (empty when there is none)."""
    import json

    path = run_dir / "manifest.json"
    if not path.is_file():
        return ""
    with _reading(path):
        manifest = json.loads(path.read_text())
        return f"{manifest['scenario'].get('name', '')}, seed {manifest.get('seed')}"


def _read_dwell(run_dir: Path) -> tuple[str, list[dict]]:
    """Predictor name and every dwell.csv row."""
    path = run_dir / "dwell.csv"
    if not path.is_file():
        return "", []
    with _reading(path):
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        return (rows[0]["predictor"] if rows else ""), rows


def _plot_dwell(plt, run_dir: Path, out: Path, fmt: str = "png") -> list[Path]:
    predictor, rows = _read_dwell(run_dir)
    realized_rows = [r for r in rows if r["censored"] == "False"]
    pairs = [(float(r["predicted_s"]), float(r["realized_s"]), r.get("selected") == "True") for r in realized_rows]
    finite = [(p, q, s) for p, q, s in pairs if math.isfinite(p) and math.isfinite(q)]
    if not finite:
        return []
    infinite = sum(not math.isfinite(float(r["predicted_s"])) for r in rows)
    censored = len(rows) - len(realized_rows)
    boundary = sum(r.get("boundary_exit") == "True" for r in realized_rows)
    errors = sorted(abs(p - q) for p, q, _ in finite)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    top = 1.25 * max(q for _, q, _ in finite)   # a nearly stopped vehicle's prediction is huge: clip it
    over = sum(p > top for p, _, _ in finite)
    ax[0].plot([0, top], [0, top], color="grey", lw=0.8)
    for chosen, colour, what in ((False, "tab:blue", "not selected"), (True, "tab:orange", "selected")):
        xs = [q for _, q, s in finite if s == chosen]
        ax[0].scatter(xs, [min(p, top) for p, _, s in finite if s == chosen], s=8, alpha=0.5, color=colour,
                      label=f"{what} ({len(xs)})")
    ax[0].plot([], [], " ", label=f"not drawn: {infinite} infinite, {censored} censored")
    ax[0].plot([], [], " ", label=f"{boundary} ended at the map's boundary")
    ax[0].legend(fontsize="small", loc="upper left")
    ax[0].set(xlim=(0, top), ylim=(0, top * 1.02), xlabel="realized dwell [s]",
              ylabel="predicted dwell [s]" + (f" ({over} above, drawn at the top)" if over else ""),
              title=f"{predictor} predictor ({len(finite)} of {len(rows)} predictions realized)")
    ax[1].plot(errors, [(i + 1) / len(errors) for i in range(len(errors))])
    if errors[-1] > 10.0:      # a long tail: linear below 1 s (most errors), logarithmic above
        ax[1].set_xscale("symlog", linthresh=1.0)
        ax[1].set_xlim(0, errors[-1] * 1.5)             # an absolute error is >= 0: no negative ticks
    else:
        ax[1].set_xlim(0, max(errors[-1], 1e-3) * 1.05)
    ax[1].set(xlabel="|predicted - realized| [s]", ylabel="fraction of realized predictions", title="error CDF")
    fig.suptitle(_run_title(run_dir))
    path = _save(fig, out, "dwell", fmt)
    plt.close(fig)
    return [path]


FORMATS = ("png", "pdf", "svg")
# no timestamps in the files, so the same run plots to the same bytes
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None, "Creator": None},
             "svg": {"Date": None, "Creator": None}}


def _save(fig, out: Path, stem: str, fmt: str) -> Path:
    path = out / f"{stem}.{fmt}"
    fig.savefig(path, dpi=110, format=fmt, metadata=_METADATA[fmt])
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(path: str | Path, net: str | Path | None = None, fmt: str = "png") -> list[Path]:
    """`cosim plot`: a sweep directory (it has sweep.csv) or a run directory (`net`: roads for map.png), as
    png, pdf or svg files."""
    if fmt not in FORMATS:
        raise UserError(f"cosim plot --format {fmt!r}: expected one of {', '.join(FORMATS)}")
    with _reading(Path(path)):      # what no reader above caught: one line naming the directory
        return plot_sweep(path, fmt) if (Path(path) / "sweep.csv").is_file() else plot_run(path, net, fmt)


def plot_sweep(sweep_dir: str | Path, fmt: str = "png") -> list[Path]:
    """Write plots/sweep.png: accuracy and cumulative vehicle energy over simulated time, one line per run
    of the sweep that completed rounds, labelled by its varied settings; its final accuracy, and its
    median dwell-prediction error when there is one."""
    sweep_dir = Path(sweep_dir)
    with _reading(sweep_dir / "sweep.csv"), open(sweep_dir / "sweep.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        varied = reader.fieldnames[1:reader.fieldnames.index("status")]
        runs = [(row, sweep_dir / row["run"]) for row in reader]
    runs = [(row, d) for row, d in runs if (d / "rounds.csv").is_file() and row["rounds_completed"] not in ("", "0")]
    if not runs:
        raise UserError(f"{sweep_dir / 'sweep.csv'}: no run completed a round: expected at least one to plot")
    plt = _pyplot()
    dwell_err = [float(row["dwell_median_abs_error_s"] or "nan") for row, _ in runs]
    panels = 4 if any(math.isfinite(e) for e in dwell_err) else 3
    fig, ax = plt.subplots(1, panels, figsize=(5 * panels, 4.5), constrained_layout=True)
    labels = []
    for row, run_dir in runs:
        r = _read_rounds(run_dir)
        label = ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in varied)
        labels.append(label)
        ax[0].plot(r["t_end_s"], r["accuracy"], marker=".", label=label)
        energy, total = [], 0.0
        for e in r["energy_j"]:
            total += e
            energy.append(total)
        ax[1].plot(r["t_end_s"], energy, label=label)
    ax[0].set(xlabel="simulated time [s]", ylabel="test accuracy", title="learning curves")
    ax[1].set(xlabel="simulated time [s]", ylabel="vehicle energy, cumulative [J]", title="energy")
    ax[2].barh(range(len(runs)), [float(row["final_accuracy"]) for row, _ in runs])
    ax[2].set_yticks(range(len(runs)), labels)
    ax[2].invert_yaxis()
    ax[2].set(xlabel="final test accuracy", title=f"{len(runs)} runs")
    if panels == 4:                 # per setting other than the seed: the mean and spread over seeds
        groups: dict[str, list[float]] = {}
        for (row, _), err in zip(runs, dwell_err):
            key = ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in varied if k != "seed") or "all runs"
            if math.isfinite(err):
                groups.setdefault(key, []).append(err)
        names = list(groups)
        means = [sum(v) / len(v) for v in groups.values()]
        spread = [(sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0
                  for v, m in zip(groups.values(), means)]
        ax[3].barh(range(len(names)), means, xerr=spread, capsize=3)
        ax[3].set_yticks(range(len(names)), names)
        ax[3].invert_yaxis()
        seeds = "seed" in varied
        ax[3].set(xlabel="median |error| [s]" + (", mean ± sd over seeds" if seeds else ""),
                  title="dwell prediction error")
    ax[0].legend(fontsize="small")
    out = sweep_dir / "plots"
    out.mkdir(exist_ok=True)
    path = _save(fig, out, "sweep", fmt)
    plt.close(fig)
    return [path]


def plot_run(run_dir: str | Path, net: str | Path | None = None, fmt: str = "png") -> list[Path]:
    """Write plots/rounds.png (accuracy, loss, latency, energy, vehicles selected / completed / dropped /
    aborted / late, and traffic per round) and, when the run predicted dwell times, plots/dwell.png
    (predicted vs realized, selected ones marked, what is not drawn counted; error CDF); each titled with
    the scenario's name and seed. Returns the written paths."""
    plt = _pyplot()
    run_dir = Path(run_dir)
    r = _read_rounds(run_dir)
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    fig, ax = plt.subplots(2, 3, figsize=(15, 7), constrained_layout=True)
    for key, marker in (("selected", "o"), ("completed", "."), ("dropped", "s"), ("aborted", "x"), ("late", "v")):
        if key in r:
            ax[0, 2].plot(r["round"], r[key], marker=marker, label=key)
    ax[0, 2].set(xlabel="round", ylabel="vehicles", title="vehicles per round")
    ax[0, 2].legend(fontsize="small")
    for key in ("bytes_up", "bytes_down"):
        ax[1, 2].plot(r["round"], [b / 1e6 for b in r[key]], marker=".", label=key.replace("bytes_", ""))
    ax[1, 2].set(xlabel="round", ylabel="MB", title="traffic per round")
    ax[1, 2].legend()
    fig.suptitle(_run_title(run_dir))
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
    path = _save(fig, out, "rounds", fmt)
    plt.close(fig)
    return ([path] + _plot_dwell(plt, run_dir, out, fmt) + _plot_map(plt, run_dir, out, net, fmt)
            + _plot_kept(plt, run_dir, out, fmt))


def _plot_map(plt, run_dir: Path, out: Path, net: str | Path | None, fmt: str = "png") -> list[Path]:
    """plots/map.png from positions.parquet (output.positions) and rsus.csv: the vehicles' positions at every
    tick coloured by serving RSU (grey: uncovered), the RSUs with their coverage discs, and where radio
    transfers were aborted or dropped, by cause; under them the roads of `net` (sumolib) when given."""
    import numpy as np
    import pyarrow.parquet as pq

    if not (run_dir / "positions.parquet").is_file() or not (run_dir / "rsus.csv").is_file():
        return []
    pos = pq.read_table(run_dir / "positions.parquet").to_pydict()
    with open(run_dir / "rsus.csv", newline="") as fh:
        rsus = list(csv.DictReader(fh))
    xs = [float(v) for v in pos["x_m"]] + [float(r["x_m"]) for r in rsus]
    ys = [float(v) for v in pos["y_m"]] + [float(r["y_m"]) for r in rsus]
    reach = max((float(r["radius_m"]) for r in rsus), default=0.0)
    aspect = (max(ys) - min(ys) + 2 * reach) / max(max(xs) - min(xs) + 2 * reach, 1.0)
    fig, ax = plt.subplots(figsize=(10, min(max(10 * aspect + 1.5, 3.5), 10)), constrained_layout=True)
    if net is not None:
        from mobility.roads import load_net

        from .scenario import expand_path

        for edge in load_net(expand_path(str(net))).getEdges(withInternal=False):
            shape = np.asarray(edge.getShape())
            ax.plot(shape[:, 0], shape[:, 1], color="0.8", lw=0.8, zorder=0)
    x, y, rsu = np.asarray(pos["x_m"]), np.asarray(pos["y_m"]), np.asarray(pos["rsu"], dtype=object)
    colours = plt.get_cmap("tab10")
    uncovered = np.array([r is None for r in rsu])
    ax.scatter(x[uncovered], y[uncovered], s=1, color="0.6", alpha=0.3, zorder=1, label="uncovered")
    for k, r in enumerate(rsus):
        mine = rsu == r["rsu"]
        ax.scatter(x[mine], y[mine], s=1, color=colours(k % 10), alpha=0.3, zorder=1)
        cx, cy, radius = float(r["x_m"]), float(r["y_m"]), float(r["radius_m"])
        ax.add_patch(plt.Circle((cx, cy), radius, fill=False, color=colours(k % 10), lw=1.0, zorder=2))
        ax.plot(cx, cy, marker="^", color=colours(k % 10), ms=9, mec="black", zorder=4)
        ax.annotate(r["rsu"], (cx, cy), xytext=(4, 4), textcoords="offset points", fontsize=8)
    spans = pq.read_table(run_dir / "spans.parquet", columns=["t_end_s", "actor", "kind", "status", "cause"]).to_pylist()
    cut = [s for s in spans if s["kind"] in ("tx.ul", "tx.dl") and s["status"] in ("aborted", "dropped")]
    where = _positions_at(pos, [(s["actor"], s["t_end_s"]) for s in cut])
    markers = iter("xXPD*sv")
    for cause in sorted({s["cause"] for s in cut}):
        pts = [p for s, p in zip(cut, where) if s["cause"] == cause and p is not None]
        if pts:
            px, py = zip(*pts)
            ax.scatter(px, py, marker=next(markers, "o"), s=40, color="black", zorder=5,
                       label=f"transfer cut: {cause} ({len(pts)})")
    ax.set_aspect("equal")
    ax.set(xlabel="x [m]", ylabel="y [m]", title=f"{_run_title(run_dir)}: vehicles by serving RSU")
    ax.legend(fontsize="small", markerscale=2, loc="best")
    path = _save(fig, out, "map", fmt)
    plt.close(fig)
    return [path]


def _positions_at(pos: dict, queries: list[tuple[str, float]]) -> list:
    """Each (vehicle, time)'s position at the last tick at or before that time (None if never seen)."""
    import bisect

    by_vehicle: dict[str, tuple[list, list]] = {}
    for t, v, x, y in zip(pos["t_s"], pos["vehicle"], pos["x_m"], pos["y_m"]):
        ts, xy = by_vehicle.setdefault(v, ([], []))
        ts.append(t)
        xy.append((x, y))
    out = []
    for v, t in queries:
        ts, xy = by_vehicle.get(v, ([], []))
        i = bisect.bisect_right(ts, t) - 1
        out.append(xy[i] if i >= 0 else None)
    return out


def _plot_kept(plt, run_dir: Path, out: Path, fmt: str = "png") -> list[Path]:
    """plots/kept_patches.png from kept_patches.json (token-selecting schemes): each sample image with the
    patches its top-K merged tinted red."""
    import json

    import numpy as np

    path = run_dir / "kept_patches.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    images, p = data["images"], data["patch_size"]
    fig, ax = plt.subplots(1, len(images), figsize=(2.0 * len(images), 2.4), constrained_layout=True, squeeze=False)
    for a, im in zip(ax[0], images):
        px = np.asarray(im["pixels"], dtype=float)
        grid = px.shape[0] // p
        mask = np.zeros(grid * grid, dtype=bool)
        mask[im["kept"]] = True
        shade = np.kron(mask.reshape(grid, grid), np.ones((p, p)))
        a.imshow(px, cmap="gray")
        a.imshow(np.where(shade, np.nan, 1.0), cmap="Reds", alpha=0.55, vmin=0, vmax=1)
        a.set(xticks=[], yticks=[], title=f"label {im['label']}: {len(im['kept'])} kept")
    fig.suptitle(f"{data['scheme']}: top-{data['k']} of {grid * grid} patches by CLS attention (red: merged)")
    target = _save(fig, out, "kept_patches", fmt)
    plt.close(fig)
    return [target]
