"""Trace schema, Perfetto (Chrome trace-event) validity and byte-identical reruns."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from cosim.cli import main
from cosim.trace import COUNTER_FIELDS, INSTANT_FIELDS, SPAN_FIELDS
from tests.conftest import REPO

QUICK = ["--set", "protocol.rounds=3", "--set", "protocol.vehicles_per_round=4", "--quiet"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    for name in ("a", "b"):
        assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--out", str(out / name), *QUICK]) == 0
    return out / "a", out / "b"


def test_same_scenario_and_seed_give_byte_identical_files(two_runs):
    a, b = two_runs
    for name in ("spans.parquet", "instants.parquet", "counters.parquet", "rounds.csv", "decisions.parquet",
                 "trace.json", "summary.json", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_other_seed_gives_other_trace(two_runs, tmp_path):
    main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--out", str(tmp_path / "c"), *QUICK,
          "--set", "seed=2"])
    assert (tmp_path / "c" / "spans.parquet").read_bytes() != (two_runs[0] / "spans.parquet").read_bytes()


def test_parquet_schema(two_runs):
    run = two_runs[0]
    spans = pq.read_table(run / "spans.parquet")
    assert tuple(spans.column_names) == SPAN_FIELDS
    assert str(spans.schema.field("t_start_s").type) == "double"
    assert str(spans.schema.field("bytes").type) == "int64"
    assert tuple(pq.read_table(run / "instants.parquet").column_names) == INSTANT_FIELDS
    assert tuple(pq.read_table(run / "counters.parquet").column_names) == COUNTER_FIELDS
    rows = spans.to_pylist()
    assert rows and all(r["t_end_s"] >= r["t_start_s"] for r in rows)
    assert {r["status"] for r in rows} <= {"ok", "aborted", "dropped"}
    assert all((r["status"] == "ok") == (r["cause"] == "") for r in rows)


def test_rounds_csv_columns(two_runs):
    header = (two_runs[0] / "rounds.csv").read_text().splitlines()[0].split(",")
    for col in ("round", "t_start_s", "t_end_s", "selected", "completed", "dropped", "accuracy", "loss",
                "latency_s", "energy_j", "predicted_latency_s", "predicted_energy_j"):
        assert col in header
    assert len((two_runs[0] / "rounds.csv").read_text().splitlines()) == 1 + 3


def test_chrome_trace_is_valid_trace_event_json(two_runs):
    doc = json.loads((two_runs[0] / "trace.json").read_text())
    events = doc["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert "server" in names.values() and len(names) == len(set(names.values()))
    spans = pq.read_table(two_runs[0] / "spans.parquet").to_pylist()
    xs = [e for e in events if e["ph"] == "X"]
    assert len(xs) == len(spans)
    for e, s in zip(xs, spans):
        assert names[e["tid"]] == s["actor"] and e["name"] == s["kind"]
        assert e["ts"] == pytest.approx(s["t_start_s"] * 1e6) and e["dur"] >= 0
        assert isinstance(e["pid"], int)
    assert {e["ph"] for e in events} <= {"M", "X", "i", "C"}
    assert all(e["tid"] in names for e in events if e["ph"] != "M")


def test_run_directory_contents(two_runs):
    run = two_runs[0]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["scenario"]["protocol"]["rounds"] == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["rounds_completed"] == 3


def test_plot_writes_png(two_runs, tmp_path):
    import shutil as _sh

    run = tmp_path / "copy"
    _sh.copytree(two_runs[0], run)
    assert main(["plot", str(run)]) == 0
    png = (run / "plots" / "rounds.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_reused_run_directory_needs_force_and_is_replaced_whole(two_runs, tmp_path, capsys):
    run = tmp_path / "reused"
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--out", str(run), *QUICK,
                 "--set", "output.trace_level=packets", "--set", "output.csv=true"]) == 0
    assert main(["plot", str(run)]) == 0
    (run / "notes.txt").write_text("mine")
    before = sorted(p.name for p in run.iterdir())
    capsys.readouterr()
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--out", str(run), *QUICK]) == 2
    assert "--force replaces it" in capsys.readouterr().err and sorted(p.name for p in run.iterdir()) == before
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--out", str(run), *QUICK, "--force"]) == 0
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in two_runs[0].iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reused"]     # no staging folder, no lock file left


def test_a_symlinked_plots_folder_in_a_reused_run_leaves_its_target_untouched(two_runs, tmp_path):
    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--out", str(run), *QUICK]) == 0
    elsewhere.mkdir()
    for name in ("rounds.png", "dwell.png", "keep.txt"):
        (elsewhere / name).write_text(name)
    (run / "plots").symlink_to(elsewhere, target_is_directory=True)
    assert main(["run", str(REPO / "scenarios" / "quickstart.yaml"), "--out", str(run), *QUICK, "--force",
                 "--set", "output.plots=true"]) == 0
    assert sorted((p.name, p.read_text()) for p in elsewhere.iterdir()) == [
        ("dwell.png", "dwell.png"), ("keep.txt", "keep.txt"), ("rounds.png", "rounds.png")]
    assert not (run / "plots").is_symlink() and (run / "plots" / "rounds.png").read_bytes()[:4] == b"\x89PNG"


def test_the_version_in_manifests_is_the_package_version():
    import re

    import cosim

    text = (REPO / "pyproject.toml").read_text()      # (tomllib is 3.11+; the project supports 3.10)
    assert re.search(r'^version = "([^"]+)"', text, re.MULTILINE).group(1) == cosim.__version__


def test_a_spilled_trace_writes_the_same_records_and_the_same_chrome_trace(tmp_path, monkeypatch):
    # instants and counters leave memory every SPILL_ROWS records; the outputs hold the same records
    import pyarrow.parquet as pq

    from cosim.run import run_scenario
    from cosim.scenario import load_scenario
    from cosim.trace import recorder

    sc = load_scenario(REPO / "scenarios" / "quickstart.yaml", ["protocol.rounds=3", "protocol.vehicles_per_round=4",
                                                                 "output.csv=true", "output.trace_level=packets"])
    whole = run_scenario(sc, tmp_path / "whole")
    monkeypatch.setattr(recorder, "SPILL_ROWS", 20)
    spilled = run_scenario(sc, tmp_path / "spilled")
    assert spilled.summary == whole.summary and whole.summary["counters"] > 100
    for name in ("spans", "instants", "counters", "packets"):
        a, b = pq.read_table(tmp_path / "whole" / f"{name}.parquet"), pq.read_table(tmp_path / "spilled" / f"{name}.parquet")
        assert a.equals(b) and a.num_rows > (0 if name == "spans" else 100), name
        assert (tmp_path / "whole" / f"{name}.csv").read_bytes() == (tmp_path / "spilled" / f"{name}.csv").read_bytes()
    assert pq.ParquetFile(tmp_path / "spilled" / "counters.parquet").num_row_groups > 5
    assert (tmp_path / "whole" / "trace.json").read_bytes() == (tmp_path / "spilled" / "trace.json").read_bytes()
    assert not list((tmp_path / "spilled").glob(".*"))           # no chunk file left


def test_the_chrome_trace_in_batches_is_one_json_dumps_of_the_whole(tmp_path, monkeypatch):
    import json

    from cosim.trace import Trace, export

    trace = Trace("spans")
    for k in range(50):
        trace.span(k, k + 0.5, 0, f"v{k % 7}", "tx.ul", "model", 10, 1, 0, 0.1 if k != 3 else float("nan"))
        trace.instant(k, 0, f"v{k % 11}", "select", "")
        trace.counter(k, f"v{k % 5}", "snr_db", float(k))
    monkeypatch.setattr(export, "_BATCH", 7)
    path = export.write_chrome_trace(trace, tmp_path / "trace.json")
    assert path.read_text() == export.strict_dumps(export.chrome_trace(trace), separators=(",", ":"))
    assert json.loads(path.read_text())["traceEvents"][-1]["ph"] == "C"
