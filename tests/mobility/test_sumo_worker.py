"""libsumo in a worker process (mobility.sumo.worker): the same bytes as in process, its next step computed
ahead only when nobody can ask SUMO meanwhile, and a dead worker ends the run `mobility-failed`."""
import os
import signal
from pathlib import Path

import pytest

from cosim.run import run_scenario
from cosim.scenario import load_scenario
from mobility.base import MobilityError
from mobility.errors import MobilityInputError
from mobility.sumo_live import SumoLive
from mobility.sumo_worker import RemoteApi, TraCIException

REPO = Path(__file__).resolve().parents[2]
HIGHWAY = REPO / "scenarios" / "highway" / "highway.sumocfg"


def test_a_run_with_sumo_in_a_worker_writes_the_same_bytes(tmp_path):
    # the route predictor queries SUMO at every round start (through the worker), ticks prefetch between
    runs = {}
    for worker in ("false", "true"):
        sc = load_scenario(REPO / "scenarios" / "smoke.yaml", [f"mobility.sumo.worker={worker}",
                                                                "protocol.rounds=3"])
        assert run_scenario(sc, tmp_path / worker).status == "completed"
        runs[worker] = {p.name: p.read_bytes() for p in (tmp_path / worker).iterdir()
                        if p.is_file() and p.name not in ("manifest.json", "timings.json")}
    assert len(runs["false"]) >= 9 and runs["false"] == runs["true"]


def test_the_worker_gives_the_positions_libsumo_gives_and_refuses_a_query_after_a_prefetch():
    inproc, remote = SumoLive(1.0, sumocfg=HIGHWAY, seed=1), SumoLive(1.0, sumocfg=HIGHWAY, seed=1, worker=True)
    try:
        a, b = inproc.start(), remote.start()
        for _ in range(30):
            a, b = inproc.step(), remote.step()
            remote.prefetch()
        assert a.ids == b.ids and len(a.ids) > 5 and (a.xy_m == b.xy_m).all()
        with pytest.raises(RuntimeError, match="after a prefetch"):
            remote.route_state(b.ids[0])
        b = remote.step()                      # the prefetched step is the next one
        a = inproc.step()
        assert a.ids == b.ids and (a.xy_m == b.xy_m).all()
        assert remote.route_state(b.ids[0]).edges == inproc.route_state(a.ids[0]).edges
    finally:
        inproc.close()
        remote.close()


def test_a_sumo_error_comes_back_as_a_traci_exception():
    api = RemoteApi(os.devnull)
    try:
        api.start(["sumo", "-c", str(HIGHWAY), "--no-step-log"])
        with pytest.raises(TraCIException, match="not known"):
            api.vehicle.getSpeed("no-such-vehicle")
        assert api.simulation.getTime() == 0.0
    finally:
        api.close()


def test_a_killed_worker_ends_the_source_with_a_mobility_error():
    src = SumoLive(1.0, sumocfg=HIGHWAY, seed=1, worker=True)
    try:
        src.start()
        os.kill(src._session.api.pid, signal.SIGKILL)
        with pytest.raises(MobilityError, match="worker process ended"):
            for _ in range(3):
                src.step()
    finally:
        src.close()
    assert not src.running


def test_worker_needs_libsumo(tmp_path):
    from cosim.errors import ScenarioError

    with pytest.raises(ScenarioError, match="backend 'libsumo' when worker is true"):
        load_scenario(REPO / "scenarios" / "smoke.yaml", ["mobility.sumo.worker=true", "mobility.sumo.backend=traci"])


def test_launch_warms_sumo_up_meanwhile_and_start_gives_the_same_first_step():
    plain = SumoLive(1.0, sumocfg=HIGHWAY, seed=1, warmup_s=30, worker=True)
    early = SumoLive(1.0, sumocfg=HIGHWAY, seed=1, warmup_s=30, worker=True)
    try:
        early.launch()                         # returns at once: the worker loads and warms up
        assert early._session.api._posted == 2
        a, b = plain.start(), early.start()
        assert a.ids == b.ids and len(a.ids) > 5 and (a.xy_m == b.xy_m).all()
        a, b = plain.step(), early.step()
        assert a.ids == b.ids and (a.xy_m == b.xy_m).all()
        with pytest.raises(MobilityError, match="called twice"):
            early.start()
    finally:
        plain.close()
        early.close()


def test_a_launched_start_that_sumo_refuses_is_named_as_without_launch(tmp_path):
    cfg = tmp_path / "bad.sumocfg"
    routes = tmp_path / "bad.rou.xml"
    routes.write_text('<routes><vehicle id="v" depart="0"><route edges="no-such-edge"/></vehicle></routes>')
    cfg.write_text(f'<configuration><input><net-file value="{HIGHWAY.parent / "highway.net.xml"}"/>'
                   f'<route-files value="{routes}"/></input></configuration>')
    messages = []
    for launch in (False, True):
        src = SumoLive(1.0, sumocfg=cfg, seed=1, warmup_s=5, worker=True)
        if launch:
            src.launch()
        with pytest.raises(MobilityInputError) as err:
            src.start()
        src.close()
        messages.append(str(err.value))
    assert "bad.rou.xml" in messages[0] and messages[0] == messages[1]


def test_a_malformed_input_is_withdrawn_from_launch_and_start_names_it(tmp_path):
    cfg = tmp_path / "m.sumocfg"
    cfg.write_text('<configuration><input><net-file value="x.net.xml"/></input>')      # never closed
    src = SumoLive(1.0, sumocfg=cfg, seed=1, worker=True)
    src.launch()
    assert src._session is None
    with pytest.raises(MobilityInputError, match="m.sumocfg"):
        src.start()
    src.close()


def test_a_forked_child_closes_its_copies_of_the_worker_pipes():
    src = SumoLive(1.0, sumocfg=HIGHWAY, seed=1, worker=True)
    try:
        src.start()
        api = src._session.api
        pid = os.fork()
        if pid == 0:                           # the child: both copies closed, SUMO never asked
            os._exit(0 if api._send.closed and api._recv.closed else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(src.step().ids) > 0         # the parent still talks to SUMO
    finally:
        src.close()
