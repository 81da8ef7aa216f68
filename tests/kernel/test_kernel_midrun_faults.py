"""Faults found mid-run: a bad FCD timestep or a bad SUMO route ends the run with status input-error and one line
from `cosim run` (exit 2); SUMO dying, or any MobilityError raised from a protocol's process, ends it with
mobility-failed and its detail, no traceback."""
from __future__ import annotations

import json
import os
import signal

import pytest

from cosim.cli import main
from cosim.run import run_scenario
from cosim.scenario import validate_tree
from mobility.base import MobilityError
from mobility.errors import MobilityInputError
from mobility.sumo_live import SumoLive

# a tiny, quick learning task; uploads over a slow link make rounds last seconds, so the run is busy mid-round
TINY = {"learning": {"dataset": "digits", "num_clients": 3, "arch": {"width": 4}, "batch_size": 64},
        "channel": {"uplink_bandwidth_hz": 1e4, "downlink_bandwidth_hz": 1e4}}


def _vehicle(vid: str, t: int) -> str:
    return f'<vehicle id="{vid}" x="{10 * t}" y="{vid[-1]}" angle="90" speed="10"/>'


def _cli_one_line(capfd, argv) -> str:
    """`cosim run`'s exit code 2 and its one line (read at the file descriptor: SUMO in-process writes there)."""
    code = main(argv)
    err = capfd.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    return err


# ---- FCD ------------------------------------------------------------------------------------------

FCD_BREAKS = {
    "cut-off": ('<timestep time="3.00"><vehicle id="v0" x=', ["malformed XML"]),
    "time-abc": (f'<timestep time="abc">{_vehicle("v0", 3)}</timestep>', ["timestep 4", "'abc'"]),
    "backwards": (f'<timestep time="0.50">{_vehicle("v0", 3)}</timestep>', ["timestep 4 (time 0.50)", "backwards"]),
    "id-twice": (f'<timestep time="3.00">{_vehicle("v0", 3)}{_vehicle("v0", 3)}</timestep>',
                 ["timestep 4 (time 3.00)", "'v0' is listed twice"]),
    "nan": ('<timestep time="3.00"><vehicle id="v0" x="nan" y="0" angle="90" speed="10"/></timestep>',
            ["timestep 4 (time 3.00)", "x=nan"]),
}


@pytest.mark.parametrize("how", FCD_BREAKS)
def test_bad_fcd_found_mid_run_is_one_line_and_input_error(tmp_path, scenario_file, capfd, how):
    bad, words = FCD_BREAKS[how]
    good = "".join(f'<timestep time="{t}.00">{_vehicle("v0", t)}{_vehicle("v1", t)}</timestep>\n' for t in range(3))
    (tmp_path / "trace.fcd.xml").write_text(f"<fcd-export>\n{good}{bad}\n</fcd-export>\n")
    path = scenario_file({"name": "fcd", "duration_s": 30, **TINY,
                          "mobility": {"source": "fcd", "fcd": {"file": "trace.fcd.xml"}},
                          "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 1000.0},
                          "protocol": {"rounds": 3}})
    err = _cli_one_line(capfd, ["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    assert "trace.fcd.xml" in err and all(w in err for w in words), err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "input-error" and summary["detail"] == err
    assert summary["sim_time_s"] == 3.0           # found when the replay reached it, mid-round


# ---- SUMO: a route that SUMO loads mid-run --------------------------------------------------------

def _sumo_files(tmp_path, bad_route: bool):
    """A 1 km road; a car every second; with `bad_route`, one departing at 30 s on an unknown edge (SUMO loads
    routes ahead 5 s at a time with --route-steps 5, so it finds it only then)."""
    from tests.mobility.sumo_testnets import CONSTANT_CAR, SPEED_MPS, netconvert

    net = netconvert(tmp_path, "road", '<node id="a" x="0" y="0"/><node id="b" x="1000" y="0"/>',
                     f'<edge id="e" from="a" to="b" numLanes="1" speed="{SPEED_MPS}"/>')
    cars = "".join(f'<vehicle id="c{i:02d}" type="const" depart="{i}" departSpeed="max"><route edges="e"/></vehicle>'
                   for i in range(30))
    bad = '<vehicle id="lost" type="const" depart="30"><route edges="nowhere"/></vehicle>' if bad_route else ""
    rou = tmp_path / "road.rou.xml"
    rou.write_text(f"<routes>{CONSTANT_CAR}{cars}{bad}</routes>")
    return net, rou


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_sumo_stopping_on_a_route_mid_run_is_an_input_error(tmp_path, backend):
    net, rou = _sumo_files(tmp_path, bad_route=True)
    src = SumoLive(1.0, net_file=net, route_files=[rou], backend=backend, extra_args=["--route-steps", "5"])
    try:
        src.start()
        with pytest.raises(MobilityInputError) as err:
            for _ in range(40):
                src.step()
    finally:
        src.close()
    msg = str(err.value)
    assert src.t_s > 5 and "\n" not in msg and msg.startswith(str(rou)), msg
    assert "'nowhere'" in msg and "'lost'" in msg


def _sumo_tree(net, rou, **protocol) -> dict:
    return {"name": "road", "seed": 1, "duration_s": 60, **TINY,
            "mobility": {"source": "sumo", "sumo": {"net": str(net), "routes": [str(rou)],
                                                    "extra_args": ["--route-steps", "5"]}},
            "rsus": {"positions_m": [[500.0, 0.0]], "coverage_radius_m": 600.0},
            "protocol": {"rounds": 50, "dwell_predictor": "route", "round_deadline_s": 5, **protocol}}


def test_bad_route_mid_run_from_the_cli_is_one_line_exit_2(tmp_path, scenario_file, capfd):
    net, rou = _sumo_files(tmp_path, bad_route=True)
    path = scenario_file(_sumo_tree(net, rou))
    err = _cli_one_line(capfd, ["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    assert err.startswith(str(rou)) and "'nowhere'" in err, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "input-error" and summary["detail"] == err and summary["sim_time_s"] > 5


# ---- SUMO dying, and MobilityError from a protocol's process ----------------------------------------

class _KilledAfterStep(SumoLive):
    """SUMO over TraCI, killed right after step `kill_after` returns: the next query (the route predictor's, in
    the protocol's process, or the next step) finds it dead."""

    def __init__(self, *args, kill_after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self._steps, self._kill_after = 0, kill_after

    def step(self):
        snap = super().step()
        self._steps += 1
        if self._steps == self._kill_after:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        return snap


def test_sumo_killed_mid_run_ends_as_mobility_failed(tmp_path):
    net, rou = _sumo_files(tmp_path, bad_route=False)
    sc = validate_tree(_sumo_tree(net, rou, round_interval_s=2.0), "road.yaml")
    source = _KilledAfterStep(1.0, net_file=net, route_files=[rou], backend="traci", seed=1, kill_after=6)
    result = run_scenario(sc, tmp_path / "run", source=source)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result.status == summary["status"] == "mobility-failed"
    assert "SUMO (traci) failed" in summary["detail"] and "\n" not in summary["detail"]
    assert 6.0 <= summary["sim_time_s"] <= 7.0 and not source.running


def test_mobility_error_from_the_protocols_process_ends_as_mobility_failed(tmp_path):
    tree = {"name": "inject", "duration_s": 60, **TINY,
            "mobility": {"source": "scripted", "scripted": {"vehicles": [
                {"id": "a", "x_m": 0.0, "speed_mps": 1.0}, {"id": "b", "x_m": 10.0, "speed_mps": 1.0}]}},
            "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0},
            "protocol": {"rounds": 5}}

    def on_round(row, t_s):         # runs in the protocol's process, as a route query does
        if row["round"] == 1:
            raise MobilityError(f"SUMO (libsumo) failed in route queries for 'a' at t={t_s:g} s: gone")

    result = run_scenario(validate_tree(tree, "inject.yaml"), tmp_path / "run", on_round=on_round)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert result.status == summary["status"] == "mobility-failed"
    assert summary["detail"].startswith("SUMO (libsumo) failed in route queries for 'a'")
    assert summary["rounds_completed"] == 2
