"""SumoLive: lock-step positions, heading conversion, libsumo's one-per-process guard, SUMO dying."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
from sumo_testnets import SPEED_MPS, teleport_net

from mobility.base import MobilityError
from mobility.fcd import FcdReplay
from mobility.sumo_live import SumoLive, sumo_angle_to_heading_rad

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_one_car_moves_at_constant_speed_in_lock_step(live, straight_net, backend):
    net, rou = straight_net
    src = live(0.5, net_file=net, route_files=[rou], backend=backend)

    snaps = [src.start().loaded()] + [src.step().loaded() for _ in range(10)]

    assert [s.t_s for s in snaps] == [0.5 * k for k in range(11)]
    assert all(s.ids == ("v0",) for s in snaps)
    x = np.array([s.xy_m[0, 0] for s in snaps])
    np.testing.assert_allclose(np.diff(x), SPEED_MPS * 0.5, atol=1e-9)
    np.testing.assert_allclose([s.xy_m[0, 1] for s in snaps], -1.6, atol=1e-9)
    np.testing.assert_allclose([s.speed_mps[0] for s in snaps], SPEED_MPS)
    np.testing.assert_allclose([s.heading_rad[0] for s in snaps], 0.0, atol=1e-12)
    assert src.route_edges("v0") == ("e",)


def test_heading_is_counter_clockwise_from_east(live, two_way_net):
    net, rou = two_way_net
    src = live(1.0, net_file=net, route_files=[rou])

    src.start()
    snap = src.step()

    east, west = snap.ids.index("east"), snap.ids.index("west")
    assert snap.heading_rad[east] == pytest.approx(0.0, abs=1e-12)
    assert abs(snap.heading_rad[west]) == pytest.approx(np.pi, abs=1e-12)
    np.testing.assert_allclose(snap.velocity_mps()[east], [SPEED_MPS, 0.0], atol=1e-9)
    np.testing.assert_allclose(snap.velocity_mps()[west], [-SPEED_MPS, 0.0], atol=1e-9)


def test_speed_and_heading_are_read_on_demand_while_the_step_is_current(live, two_way_net):
    net, rou = two_way_net
    src = live(1.0, net_file=net, route_files=[rou])
    src.start()
    snap, kept = src.step(), src.step().loaded()

    src.step()
    with pytest.raises(MobilityError, match="only while it is the current step"):
        snap.speed_mps
    np.testing.assert_allclose(np.abs(kept.velocity_mps()[:, 0]), SPEED_MPS, atol=1e-9)
    np.testing.assert_allclose(kept.velocity_mps([1]), kept.velocity_mps()[[1]])


def test_a_teleporting_vehicle_leaves_the_snapshot_and_comes_back(live, tmp_path):
    # Prepare: v0 is teleported at t = 17 s and put back on the road at about t = 32 s (teleport_net)
    import libsumo

    net, rou = teleport_net(tmp_path)
    src = live(1.0, net_file=net, route_files=[rou], extra_args=["--time-to-teleport", "5"],
               fcd_output=tmp_path / "jam.fcd.xml")
    # Execute
    seen = []
    for k in range(45):
        snap = src.start() if k == 0 else src.step()
        seen.append(("v0" in snap.ids, "v0" in libsumo.vehicle.getTeleportingIDList()))
    src.close()
    # Assert: present on the road, absent (though still in SUMO) while teleporting, back after, as in the FCD
    assert seen[10] == (True, False) and seen[20] == (False, True) and seen[40] == (True, False)
    assert all(present != teleporting for present, teleporting in seen[1:])
    with FcdReplay(tmp_path / "jam.fcd.xml", 1.0) as replay:
        replayed = [replay.start()] + [replay.step() for _ in range(44)]
    assert [("v0" in s.ids) for s in replayed] == [p for p, _ in seen]


def test_sumo_angle_conversion():
    # SUMO: 0 = north, 90 = east, clockwise
    np.testing.assert_allclose(sumo_angle_to_heading_rad(np.array([90.0, 0.0, 180.0, 270.0, 45.0])),
                               [0.0, np.pi / 2, -np.pi / 2, -np.pi, np.pi / 4], atol=1e-12)


def test_gui_runs_sumo_gui_over_traci(straight_net, tmp_path):
    net, rou = straight_net
    cmd = SumoLive(1.0, net_file=net, route_files=[rou], backend="traci", gui=True)._command(tmp_path / "e.log")

    assert Path(cmd[0]).name == "sumo-gui" and Path(cmd[0]).is_file()
    assert "--start" in cmd and "--quit-on-end" in cmd
    with pytest.raises(ValueError, match="traci"):
        SumoLive(1.0, net_file=net, gui=True)


def test_libsumo_is_one_per_process_and_close_is_idempotent(live, straight_net):
    net, rou = straight_net
    first = live(1.0, net_file=net, route_files=[rou])
    first.start()

    with pytest.raises(MobilityError, match="libsumo is already running"):
        live(1.0, net_file=net, route_files=[rou]).start()
    assert first.running and len(first.step().ids) == 1  # the refused start left the first run alone

    first.close()
    first.close()
    assert not first.running
    with pytest.raises(MobilityError, match="not running"):
        first.step()
    second = live(1.0, net_file=net, route_files=[rou])
    assert second.start().ids == ("v0",)
    second.close()


def test_context_manager_closes_on_error(straight_net):
    net, rou = straight_net
    with pytest.raises(ZeroDivisionError):
        with SumoLive(1.0, net_file=net, route_files=[rou]) as src:
            src.start()
            1 / 0
    assert not src.running  # the guard fixture also checks that libsumo was released


def test_killed_sumo_raises_mobility_error(live, straight_net):
    net, rou = straight_net
    src = live(1.0, net_file=net, route_files=[rou], backend="traci")
    src.start()
    src.step()

    os.kill(src.pid, signal.SIGKILL)
    with pytest.raises(MobilityError) as err:
        src.step()

    assert "\n" not in str(err.value) and "traci" in str(err.value)
    assert not src.running
    src.close()


def test_bundled_scenarios_run(live):
    for name in ("highway", "urban_grid"):
        folder = REPO / "scenarios" / name
        assert all(f.stat().st_size < 1_000_000 for f in folder.iterdir())
        src = live(1.0, sumocfg=folder / f"{name}.sumocfg", seed=1)
        snaps = [src.start()] + [src.step() for _ in range(120)]
        src.close()
        assert max(len(s.ids) for s in snaps) > 10
        assert all(list(s.ids) == sorted(s.ids) for s in snaps)


def test_gui_without_a_display_is_one_clear_line(straight_net, monkeypatch):
    from mobility.errors import MobilityInputError

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    net, rou = straight_net
    src = SumoLive(1.0, net_file=net, route_files=[rou], backend="traci", gui=True)
    with pytest.raises(MobilityInputError, match="needs a display"):
        src.start()
    assert not src.running


def test_an_additional_file_with_the_add_root_runs_as_sumo_runs_it(live, straight_net, tmp_path):
    # SUMO's own examples write additional files as <add> as well as <additional>
    net, rou = straight_net
    add = tmp_path / "pois.add.xml"
    add.write_text('<add><poi id="p0" x="100" y="20" color="1,0,0"/></add>')
    src = live(1.0, net_file=net, route_files=[rou], additional_files=[add])
    snaps = [src.start().loaded()] + [src.step().loaded() for _ in range(3)]
    assert all(s.ids == ("v0",) for s in snaps)


def _red_light_run(live, tmp_path, backend):
    """A car on a-b-c stops at b's light (red until t = 55 s, then green), with an RSU beside b."""
    from sumo_testnets import netconvert

    net = netconvert(tmp_path, "tls", '<node id="a" x="0" y="0"/><node id="b" x="300" y="0" type="traffic_light"/>'
                     '<node id="c" x="800" y="0"/>',
                     '<edge id="ab" from="a" to="b" numLanes="1" speed="13.89"/>'
                     '<edge id="bc" from="b" to="c" numLanes="1" speed="13.89"/>')
    add = tmp_path / "tls.add.xml"
    add.write_text('<additional><tlLogic id="b" type="static" programID="red_then_green" offset="0">'
                   '<phase duration="55" state="r"/><phase duration="300" state="G"/></tlLogic></additional>')
    rou = tmp_path / "tls.rou.xml"
    car = '<vType id="car" sigma="0" speedFactor="1" speedDev="0" accel="2.6" decel="4.5" length="5"/>'
    rou.write_text(f'<routes>{car}<vehicle id="v0" type="car" depart="0" departSpeed="max">'
                   '<route edges="ab bc"/></vehicle></routes>')
    return live(1.0, net_file=net, route_files=[rou], additional_files=[add], backend=backend)


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_a_car_waiting_at_a_red_light_gets_a_finite_route_dwell_near_the_truth(live, tmp_path, backend):
    # Prepare: the RSU's disc (radius 200 m around (300, 20)) reaches to x = 499 on bc
    src = _red_light_run(live, tmp_path, backend)
    rsu, radius = np.array([300.0, 20.0]), 200.0
    snap = src.start()
    predicted, green_at = {}, set()
    while snap.t_s < 120:
        snap = src.step()
        t = snap.t_s
        if t in (30.0, 40.0, 50.0):                     # stopped at the light since about t = 23 s
            green_at.add(t + src.red_wait_s("v0"))
            predicted[t] = src.route_dwell_s("v0", rsu, radius)
        if "v0" in snap.ids and np.hypot(*(snap.xy_m[0] - rsu)) > radius and t > 55:
            exit_s = t
            break
    # Assert: finite, and within 5 s of the realized dwell (the car's start-up acceleration is not modelled)
    assert set(predicted) == {30.0, 40.0, 50.0}
    (green,) = green_at                                  # the same switch time from every tick
    assert abs(green - 55.0) <= 1.0
    for t, p in predicted.items():
        assert np.isfinite(p) and abs(p - (exit_s - t)) <= 5.0, (t, p, exit_s)


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_a_warm_up_runs_sumo_before_t_0(live, straight_net, backend):
    # the car departs at SUMO time 0; after a 10 s warm-up it is already 200 m down the road at t = 0
    net, rou = straight_net
    cold_src = live(1.0, net_file=net, route_files=[rou], backend=backend)
    cold = cold_src.start().loaded()
    cold_src.close()                                     # libsumo: one per process
    assert cold.t_s == 0.0
    warm_src = live(1.0, net_file=net, route_files=[rou], backend=backend, warmup_s=10.0)
    warm = warm_src.start().loaded()
    assert warm.t_s == 0.0 and warm.ids == ("v0",)
    assert warm.xy_m[0, 0] - cold.xy_m[0, 0] == pytest.approx(10 * SPEED_MPS, abs=1e-6)
