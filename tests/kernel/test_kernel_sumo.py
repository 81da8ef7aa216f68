"""Runs on SUMO mobility: a short quickstart, dwell.csv, mid-run SUMO death, bad SUMO inputs."""
from __future__ import annotations

import csv
import json
import math
import os
import signal

import pyarrow.parquet as pq
import pytest

from cosim.cli import main
from cosim.run import run_scenario
from cosim.scenario import load_scenario, validate_tree
from mobility.sumo_live import SumoLive
from tests.conftest import REPO

QUICK = REPO / "scenarios" / "quickstart.yaml"
SHORT = ["protocol.rounds=15", "protocol.start_s=30", "duration_s=120"]


def _dwell_rows(run_dir):
    with open(run_dir / "dwell.csv") as fh:
        return list(csv.DictReader(fh))


def test_quickstart_on_sumo_runs_and_records_dwell(tmp_path):
    sc = load_scenario(QUICK, SHORT)
    result = run_scenario(sc, tmp_path / "run")
    assert result.status == "completed" and len(result.rounds) == 15
    rows = _dwell_rows(tmp_path / "run")
    assert rows and {r["predictor"] for r in rows} == {"route"}
    closed = [r for r in rows if r["censored"] == "False"]
    assert closed, "some vehicle must leave its RSU during the run"
    # on a straight highway the route predictor is right to within one mobility step, but for a vehicle that
    # brakes in traffic after the prediction (it assumes the speed it sees)
    errors = sorted(abs(float(r["predicted_s"]) - float(r["realized_s"])) for r in closed)
    assert errors[len(errors) // 2] <= 0.2 and sum(e > 1.0 + 1e-9 for e in errors) <= len(errors) // 50
    # the serving RSU's change, predicted on the route at the ticks: mostly the very tick
    served = [r for r in rows if r["realized_serving_s"] != "nan"]
    serving = sorted(abs(float(r["predicted_serving_s"]) - float(r["realized_serving_s"])) for r in served)
    assert served and serving[len(serving) // 2] == 0.0 and serving[-1] <= 2.0
    # cosim plot draws the predictions against the realized values
    assert main(["plot", str(tmp_path / "run")]) == 0
    png = (tmp_path / "run" / "plots" / "dwell.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


SCRIPTED = {
    "name": "dwell", "seed": 0, "duration_s": 60,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": -300.0, "y_m": 50.0, "speed_mps": 20.0},
        {"id": "b", "x_m": 100.0, "y_m": -20.0, "speed_mps": 30.0, "heading_deg": 90.0},
        {"id": "c", "x_m": 0.0, "speed_mps": 0.0}]}},
    "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 400.0},
    "channel": {"uplink_bandwidth_hz": 2e4},           # slow uploads: three 20 s rounds span the minute
    "protocol": {"rounds": 10, "selection": "all", "vehicles_per_round": 3, "round_deadline_s": 20},
}


@pytest.mark.parametrize("predictor", ["kinematic", "oracle"])
def test_dwell_predictions_match_analytic_exit_times(tmp_path, predictor):
    tree = {**SCRIPTED, "protocol": {**SCRIPTED["protocol"], "dwell_predictor": predictor}}
    run_scenario(validate_tree(tree, "dwell.yaml"), tmp_path / "run")
    rows = _dwell_rows(tmp_path / "run")
    assert {r["vehicle"] for r in rows} == {"a", "b", "c"}

    def exit_time(vid):   # |p0 + v t| = r, solved in closed form
        x0, y0, vx, vy = {"a": (-300, 50, 20, 0), "b": (100, -20, 0, 30)}[vid]
        a, b, c = vx * vx + vy * vy, x0 * vx + y0 * vy, x0 * x0 + y0 * y0 - 400.0 ** 2
        return (-b + math.sqrt(b * b - a * c)) / a

    for r in rows:
        t = float(r["t_s"])
        if r["vehicle"] == "c":                      # parked at the RSU: never leaves
            assert r["censored"] == "True" and float(r["predicted_s"]) > 60 - t - 1e-9
            continue
        truth = exit_time(r["vehicle"]) - t
        assert float(r["predicted_s"]) == pytest.approx(truth, abs=1.0)       # within one step
        assert r["censored"] == "False" and float(r["realized_s"]) == pytest.approx(truth, abs=1.0)
        if predictor == "oracle":                    # the oracle is the realized value itself
            assert float(r["predicted_s"]) == pytest.approx(float(r["realized_s"]), abs=1e-9)
        else:                                        # kinematic is exact on straight lines
            assert float(r["predicted_s"]) == pytest.approx(truth, abs=1e-9)
    # the trace holds the same: an instant per prediction, one per realization at the exit time
    instants = pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()
    made = [i for i in instants if i["kind"] == "dwell.predict"]
    realized = [i for i in instants if i["kind"] == "dwell.realized"]
    assert [(i["t_s"], i["actor"]) for i in made] == [(float(r["t_s"]), r["vehicle"]) for r in rows]
    closed = [r for r in rows if r["censored"] == "False"]
    assert len(realized) == len(closed) > 0
    for i in realized:
        fields = dict(kv.split("=") for kv in i["detail"].split()[1:])
        assert i["t_s"] == pytest.approx(float(fields["predicted_at_s"]) + float(fields["realized_s"]), abs=1e-4)


class _DyingSumo(SumoLive):
    """A real SUMO (TraCI subprocess) whose process is killed at a given step."""

    def __init__(self, *args, kill_at_step: int, **kwargs):
        super().__init__(*args, **kwargs)
        self._steps, self._kill_at = 0, kill_at_step

    def step(self):
        self._steps += 1
        if self._steps == self._kill_at:
            os.kill(self.pid, signal.SIGKILL)
        return super().step()


def test_sumo_dying_mid_run_ends_cleanly_with_trace_written(tmp_path):
    sc = load_scenario(QUICK, ["protocol.rounds=50", "protocol.start_s=30", "mobility.sumo.backend=traci"])
    source = _DyingSumo(1.0, sumocfg=REPO / "scenarios" / "highway" / "highway.sumocfg", seed=1,
                        backend="traci", kill_at_step=40)
    result = run_scenario(sc, tmp_path / "run", source=source)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "mobility-failed" and summary["detail"]
    assert summary["sim_time_s"] == 40.0
    assert 0 < len(result.rounds) < 50
    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    assert spans and max(s["t_end_s"] for s in spans) <= 40.0
    assert all(s["cause"] == "mobility-failed" for s in spans if s["status"] != "ok")
    assert (tmp_path / "run" / "trace.json").is_file() and (tmp_path / "run" / "rounds.csv").is_file()


def test_unknown_rsu_edge_is_one_line_naming_id_and_net(tmp_path, capsys):
    code = main(["run", str(QUICK), "--set", "rsus.placement.edges=[nope]", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "'nope'" in err and "highway.net.xml" in err


def test_malformed_net_is_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "bad.net.xml").write_text("<net><edge id='e'></net>")
    (tmp_path / "r.rou.xml").write_text("<routes/>")
    tree = {"name": "bad", "mobility": {"source": "sumo", "sumo": {"net": "bad.net.xml", "routes": ["r.rou.xml"]}}}
    import yaml
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tree))
    code = main(["run", str(tmp_path / "s.yaml"), "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "bad.net.xml" in err
    assert not (tmp_path / "o").exists()            # nothing ran: no run directory claiming a failed run


def test_malformed_route_file_found_by_sumo_is_an_input_error_with_no_run_dir(tmp_path, capsys):
    import shutil

    shutil.copytree(REPO / "scenarios" / "highway", tmp_path / "hw")
    (tmp_path / "hw" / "highway.rou.xml").write_text("<routes><vehicle")
    config = str(tmp_path / "hw" / "highway.sumocfg")
    code = main(["run", str(QUICK), "--set", f"mobility.sumo.config={config}", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "highway.rou.xml: malformed XML" in err
    assert not (tmp_path / "o").exists()


def test_fcd_replay_run_matches_live_run(tmp_path):
    """Record a live SUMO run's FCD, replay it as the mobility source: the same rounds come out."""
    overrides = ["protocol.rounds=4", "protocol.start_s=30", "duration_s=60", "protocol.selection=random",
                 "protocol.dwell_predictor=kinematic", "rsus.placement=null",
                 "rsus.positions_m=[[500.0, -10.0], [1500.0, -10.0], [2500.0, -10.0]]"]
    sc_live = load_scenario(QUICK, overrides)
    fcd = tmp_path / "fcd.xml"
    live_source = SumoLive(1.0, sumocfg=REPO / "scenarios" / "highway" / "highway.sumocfg", seed=1,
                           fcd_output=fcd, fcd_precision=6)
    live = run_scenario(sc_live, tmp_path / "live", source=live_source)
    sc_fcd = validate_tree({**sc_live.model_dump(mode="json"), "mobility": {
        "source": "fcd", "step_s": 1.0, "fcd": {"file": str(fcd)}}}, str(tmp_path / "replay.yaml"))
    replay = run_scenario(sc_fcd, tmp_path / "replay")
    assert len(live.rounds) == len(replay.rounds) == 4
    for a, b in zip(live.rounds, replay.rounds):
        assert (a["selected"], a["completed"], a["accuracy"]) == (b["selected"], b["completed"], b["accuracy"])
        assert a["t_end_s"] == pytest.approx(b["t_end_s"], rel=1e-6)


def test_traci_and_libsumo_runs_are_byte_identical(tmp_path):
    # kinematic predictions read speed and heading: on demand from libsumo, subscribed over TraCI
    common = SHORT + ["protocol.dwell_predictor=kinematic", "protocol.rounds=6"]
    for backend in ("libsumo", "traci"):
        sc = load_scenario(QUICK, common + [f"mobility.sumo.backend={backend}"])
        assert run_scenario(sc, tmp_path / backend).status == "completed"
    for name in ("spans.parquet", "instants.parquet", "counters.parquet", "rounds.csv", "dwell.csv", "trace.json",
                 "decisions.parquet"):
        assert (tmp_path / "libsumo" / name).read_bytes() == (tmp_path / "traci" / name).read_bytes(), name


def test_a_run_where_no_vehicle_meets_an_rsu_says_so(tmp_path):
    sc = load_scenario(QUICK, ["duration_s=60", "rsus={positions_m: [[1.0e6, 0.0]]}"])
    result = run_scenario(sc, tmp_path / "run")
    assert result.status == "duration-reached" and not result.rounds
    assert result.summary["detail"].endswith("vehicles appeared, 0 ever in an RSU's coverage")


def test_ctrl_c_mid_run_writes_what_was_recorded(tmp_path):
    sc = load_scenario(QUICK, SHORT)

    def on_round(row, t_s):
        if row["round"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, tmp_path / "run", on_round=on_round)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["rounds_completed"] == 3   # rounds 0, 1, 2
    assert pq.read_table(tmp_path / "run" / "spans.parquet").num_rows > 0


def test_a_vehicle_back_from_a_teleport_keeps_its_client(tmp_path):
    from tests.mobility.sumo_testnets import teleport_net

    net, rou = teleport_net(tmp_path)
    tree = {"name": "jam", "seed": 1, "duration_s": 45,
            "mobility": {"source": "sumo", "sumo": {"net": str(net), "routes": [str(rou)],
                                                    "extra_args": ["--time-to-teleport", "5"]}},
            "rsus": {"positions_m": [[250.0, 0.0]], "coverage_radius_m": 1000.0},
            "learning": {"num_clients": 5},
            # rounds keep the run going to t = 45 s; one every 20 s is enough (every 5 s trained 270 times)
            "protocol": {"rounds": 1000, "selection": "all", "round_deadline_s": 5, "round_interval_s": 20}}
    run_scenario(validate_tree(tree, "jam.yaml"), tmp_path / "run")
    instants = pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()
    v0 = [(i["t_s"], i["kind"], i["detail"]) for i in instants if i["actor"] == "v0" and i["kind"].startswith("vehicle")]
    assert [k for _, k, _ in v0] == ["vehicle.enter", "vehicle.leave", "vehicle.enter"]
    assert v0[0][2] == v0[2][2] and v0[1][0] == 17.0 and 30.0 < v0[2][0] < 35.0     # the same client=...


def test_dwell_fit_leaves_out_a_vehicle_that_would_leave_before_its_round_ends(tmp_path):
    # b drives out of the disc at about t = 13.6 s; a round over this slow uplink lasts about 20 s
    outcomes = {}
    for rule in ("dwell", "dwell_fit"):
        tree = {**SCRIPTED, "channel": {"uplink_bandwidth_hz": 1e4},
                "protocol": {**SCRIPTED["protocol"], "rounds": 1, "selection": rule}}
        run_scenario(validate_tree(tree, "dwell.yaml"), tmp_path / rule)
        instants = pq.read_table(tmp_path / rule / "instants.parquet").to_pylist()
        spans = pq.read_table(tmp_path / rule / "spans.parquet").to_pylist()
        outcomes[rule] = ({i["actor"] for i in instants if i["kind"] == "select"},
                          [i for i in instants if i["kind"] == "select.drop"],
                          {s["actor"] for s in spans if s["status"] == "aborted"})
    selected, dropped, aborted = outcomes["dwell"]
    assert selected == {"a", "b", "c"} and not dropped and aborted == {"b"}
    selected, dropped, aborted = outcomes["dwell_fit"]
    assert selected == {"a", "c"} and not aborted
    assert [d["actor"] for d in dropped] == ["b"] and "> dwell_s=13.57" in dropped[0]["detail"]
