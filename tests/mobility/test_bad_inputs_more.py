"""More bad inputs: every malformed case of the FCD, scripted, net and polygon readers is one line naming the
file (and the timestep, id or edge); every error raised inside a SimPy process survives SimPy's re-raise."""
from __future__ import annotations

import gzip
import pickle
import re

import numpy as np
import pytest
import simpy

from channel.buildings import Buildings
from cosim.errors import ScenarioError, SettingError, UserError
from mobility.base import MobilityError
from mobility.errors import MobilityFileNotFoundError, MobilityInputError
from mobility.fcd import FcdReplay, FcdTracks, iter_fcd_frames
from mobility.roads import PathTooShortError, load_net, longest_path_edges, rsus_along_path
from mobility.scripted import ScriptedSource, ScriptedVehicle


def one_line_naming(err: pytest.ExceptionInfo, *names: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg and all(n in msg for n in names), msg
    return msg


# ---- exceptions through SimPy ----------------------------------------------------------------------

ERRORS = [
    MobilityInputError("/x/a.fcd.xml", "timestep 3 (time 2.00): vehicle 'v' is listed twice"),
    MobilityFileNotFoundError("/x/gone.xml"),
    MobilityFileNotFoundError("/x/gone.xml", "route file not found"),
    MobilityError("SUMO (traci) failed in simulationStep at t=3 s: FatalTraCIError: Connection closed by SUMO."),
    SettingError("rsus.placement.spacing_m", 5000.0, "at most 1000.0 m"),
    ScenarioError(["a.yaml: seed = 'x': expected an integer", "a.yaml: name: expected a string"]),
    UserError("a.yaml: something"),
    PathTooShortError(12.5, 100.0),
]


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_error_rebuilds_from_its_args_as_simpy_does(exc):
    rebuilt = type(exc)(*exc.args)
    assert type(rebuilt) is type(exc) and str(rebuilt) == str(exc)
    assert str(pickle.loads(pickle.dumps(exc))) == str(exc)      # sweep workers send them back pickled


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_error_raised_in_a_simpy_process_comes_out_whole(exc):
    env = simpy.Environment()

    def proc():
        yield env.timeout(1.0)
        raise exc

    env.process(proc())
    with pytest.raises(type(exc)) as err:
        env.run()
    assert str(err.value) == str(exc)


# ---- FCD ------------------------------------------------------------------------------------------

def _vehicle(vid="a", x="0", y="0", speed="1", angle="90") -> str:
    return f'<vehicle id="{vid}" x="{x}" y="{y}" angle="{angle}" speed="{speed}"/>'


def _fcd(tmp_path, bad_step: str, name: str = "bad.fcd.xml"):
    """Three good timesteps (t = 0, 1, 2), then `bad_step` as the fourth, then a good one at t = 9."""
    good = "".join(f'<timestep time="{t}.00">{_vehicle(x=str(t))}{_vehicle("b", x=str(t))}</timestep>\n'
                   for t in range(3))
    path = tmp_path / name
    path.write_text(f"<fcd-export>\n{good}{bad_step}\n<timestep time='9.00'>{_vehicle()}</timestep>\n</fcd-export>\n")
    return path


BAD_STEPS = [
    ("time-abc", f'<timestep time="abc">{_vehicle()}</timestep>', ["timestep 4", "'abc'", "not a finite number"]),
    ("time-missing", f"<timestep>{_vehicle()}</timestep>", ["timestep 4", "no time attribute"]),
    ("time-nan", f'<timestep time="nan">{_vehicle()}</timestep>', ["timestep 4", "'nan'"]),
    ("time-backwards", f'<timestep time="1.50">{_vehicle()}</timestep>', ["timestep 4 (time 1.50)", "backwards"]),
    ("time-repeated", f'<timestep time="2.00">{_vehicle()}</timestep>', ["timestep 4 (time 2.00)", "repeats"]),
    ("id-twice", f'<timestep time="3.00">{_vehicle("b")}{_vehicle()}{_vehicle("b", x="5")}</timestep>',
     ["timestep 4 (time 3.00)", "vehicle 'b' is listed twice"]),
    ("x-nan", f'<timestep time="3.00">{_vehicle(x="nan")}</timestep>', ["timestep 4 (time 3.00)", "x=nan"]),
    ("y-inf", f'<timestep time="3.00">{_vehicle(y="-inf")}</timestep>', ["vehicle 'a'", "y=-inf"]),
    ("speed-inf", f'<timestep time="3.00">{_vehicle(speed="inf")}</timestep>', ["speed=inf", "finite"]),
    ("angle-nan", f'<timestep time="3.00">{_vehicle(angle="NaN")}</timestep>', ["angle=nan"]),
    ("x-text", f'<timestep time="3.00">{_vehicle(x="east")}</timestep>', ["timestep 4 (time 3.00)", "numeric"]),
    ("no-id", '<timestep time="3.00"><vehicle x="0" y="0" angle="0" speed="0"/></timestep>',
     ["timestep 4 (time 3.00)", "without an id"]),
]


@pytest.mark.parametrize("bad_step, words", [c[1:] for c in BAD_STEPS], ids=[c[0] for c in BAD_STEPS])
def test_bad_fcd_timestep_is_one_line_naming_file_and_timestep(tmp_path, bad_step, words):
    path = _fcd(tmp_path, bad_step)
    replay = FcdReplay(path, 1.0)
    assert replay.start().ids == ("a", "b")
    assert replay.step().ids == ("a", "b")        # found mid-run: when the replay reads that far
    with pytest.raises(MobilityInputError) as err:
        for _ in range(3):
            replay.step()
    one_line_naming(err, "bad.fcd.xml", *words)
    with pytest.raises(MobilityInputError) as err:
        FcdTracks.load(path)
    one_line_naming(err, "bad.fcd.xml", *words)


@pytest.mark.parametrize("cut", ["half", "crc", "garbled"])
def test_gzip_fcd_broken_mid_stream_fails_mid_run(tmp_path, cut):
    rng = np.random.default_rng(0)           # random positions: the gzip is not tiny, so it is read in chunks
    steps = "".join(f'<timestep time="{t}.00">' + "".join(_vehicle(f"v{i:02d}", *map(str, rng.random(2) * 1e4))
                                                           for i in range(60)) + "</timestep>\n" for t in range(60))
    data = bytearray(gzip.compress(f"<fcd-export>\n{steps}</fcd-export>\n".encode()))
    if cut == "half":
        data = data[: len(data) // 2]
    elif cut == "crc":
        data[-8:-4] = bytes(4)
    else:
        data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path = tmp_path / "broken.fcd.xml.gz"
    path.write_bytes(bytes(data))
    replay = FcdReplay(path, 1.0)
    assert len(replay.start().ids) == 60
    with pytest.raises(MobilityInputError) as err:
        for _ in range(70):
            replay.step()
    assert replay.t_s >= 1.0                   # not at the start: part-way through the file
    msg = one_line_naming(err, "broken.fcd.xml.gz")
    assert "unreadable" in msg or (cut == "garbled" and "malformed XML" in msg), msg   # garbage may inflate
    replay.close()


@pytest.mark.parametrize("text, words", [
    ('<?xml version="1.0" encoding="no-such-codec"?><fcd-export/>', ["unreadable text", "no-such-codec"]),
    ("", ["malformed XML"]),
    ("\x00\x01binary", ["malformed XML"]),
], ids=["unknown-encoding", "empty", "binary"])
def test_fcd_that_cannot_be_read_as_text(tmp_path, text, words):
    path = tmp_path / "odd.fcd.xml"
    path.write_bytes(text.encode())
    with pytest.raises(MobilityInputError) as err:
        list(iter_fcd_frames(path))
    one_line_naming(err, "odd.fcd.xml", *words)


# ---- scripted vehicles ----------------------------------------------------------------------------

def test_scripted_source_refuses_an_id_twice_and_non_finite_numbers():
    with pytest.raises(ValueError) as err:
        ScriptedSource([ScriptedVehicle("a", 0, 0, 1), ScriptedVehicle("b", 0, 0, 1),
                        ScriptedVehicle("a", 5, 0, 1)], 1.0)
    one_line_naming(err, "'a'", "listed twice")
    with pytest.raises(ValueError) as err:
        ScriptedSource([ScriptedVehicle("a", float("nan"), 0, 1)], 1.0)
    one_line_naming(err, "'a'", "finite")


def test_scripted_scenario_with_an_id_twice_is_one_line(scenario_file, capsys):
    from cosim.cli import main

    path = scenario_file({"name": "dup", "mobility": {"source": "scripted", "scripted": {"vehicles": [
        {"id": "a", "x_m": 0.0}, {"id": "b", "x_m": 10.0}, {"id": "a", "x_m": 20.0}]}}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "mobility.scripted.vehicles" in err and "'a' is vehicles.0 and vehicles.2" in err


# ---- SUMO nets for RSU placement ------------------------------------------------------------------

_LOC = '<location netOffset="0,0" convBoundary="0,0,100,0" origBoundary="0,0,100,0" projParameter="!"/>'
_JUNCTIONS = ('<junction id="a" type="dead_end" x="0" y="0" incLanes="" intLanes="" shape="0,0"/>'
              '<junction id="b" type="dead_end" x="100" y="0" incLanes="" intLanes="" shape="100,0"/>')


def _lane(allow: str = "", shape: str = "0,0 100,0") -> str:
    allowed = f' allow="{allow}"' if allow else ""
    return f'<lane id="e_0" index="0"{allowed} speed="13" length="100" shape="{shape}"/>'


NETS = [
    # (id, net text, edge ids for placement or None (the longest path), words the one line holds)
    ("no-edges", f'<net version="1.9">{_LOC}</net>', None, ["no road to place RSUs along"]),
    ("edge-without-lanes", f'<net version="1.9">{_LOC}<edge id="e" from="a" to="b"/>{_JUNCTIONS}</net>', None,
     ["no road to place RSUs along"]),
    ("named-edge-without-lanes", f'<net version="1.9">{_LOC}<edge id="e" from="a" to="b"/>{_JUNCTIONS}</net>',
     ["e"], ["edge 'e' has no lanes"]),
    ("footpaths-only", f'<net version="1.9">{_LOC}<edge id="e" from="a" to="b">{_lane("pedestrian")}</edge>'
     f'{_JUNCTIONS}</net>', None, ["passenger cars"]),
    ("junctions-missing", f'<net version="1.9">{_LOC}<edge id="e" from="a" to="b">{_lane()}</edge></net>', None,
     ["unusable SUMO net geometry"]),
    ("shape-not-numbers", f'<net version="1.9">{_LOC}<edge id="e" from="a" to="b">{_lane(shape="0,0 east,0")}'
     f'</edge>{_JUNCTIONS}</net>', None, ["unreadable SUMO net", "'east'"]),
    ("malformed", '<net version="1.9"><edge id="e">', None, ["malformed XML"]),
    ("empty", "", None, ["malformed XML"]),
]


@pytest.mark.parametrize("text, edges, words", [n[1:] for n in NETS], ids=[n[0] for n in NETS])
def test_net_unfit_for_rsu_placement_is_one_line_naming_it(tmp_path, text, edges, words):
    net = tmp_path / "odd.net.xml"
    net.write_text(text)
    with pytest.raises(MobilityInputError) as err:
        rsus_along_path(net, 30.0, 50.0, edge_ids=edges)
    one_line_naming(err, "odd.net.xml", *words)


def test_longest_path_of_a_net_object_without_roads_is_an_input_error(tmp_path):
    net = tmp_path / "none.net.xml"
    net.write_text(f'<net version="1.9">{_LOC}</net>')
    with pytest.raises(MobilityInputError) as err:
        longest_path_edges(load_net(net))
    assert isinstance(err.value, ValueError)          # as before: callers catching ValueError still do


def test_placement_on_a_net_without_roads_is_one_line_from_the_cli(tmp_path, scenario_file, capsys):
    from cosim.cli import main

    (tmp_path / "empty.net.xml").write_text(f'<net version="1.9">{_LOC}</net>')
    (tmp_path / "r.rou.xml").write_text("<routes/>")
    path = scenario_file({"name": "no-roads", "mobility": {"source": "sumo", "sumo": {
        "net": "empty.net.xml", "routes": ["r.rou.xml"]}}, "rsus": {"placement": {"spacing_m": 100.0}}})
    assert main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty.net.xml" in err and "no road to place RSUs along" in err, err
    assert not (tmp_path / "out").exists()


# ---- building polygons ----------------------------------------------------------------------------

def _poly(shape: str, pid: str = "h1") -> str:
    return f'<additional><poly id="{pid}" type="building" color="1,0,0" shape="{shape}"/></additional>'


POLYS = [
    ("malformed", '<additional><poly id="h1" type="building" color="1,0,0" shape="0,0 9,0 9,9"', ["could not read"]),
    ("empty", "", ["could not read"]),
    ("not-xml", "hello", ["could not read"]),
    ("shape-text", _poly("0,0 east,0 9,9"), ["could not read", "'east'"]),
    ("shape-one-number", _poly("0,0 9 9,9"), ["could not read"]),
    ("shape-nan", _poly("0,0 nan,0 9,9"), ["<poly id='h1'>", "finite numbers"]),
    ("shape-inf", _poly("0,0 inf,0 9,9", "h2"), ["<poly id='h2'>", "finite numbers"]),
    ("shape-empty", _poly(""), ["<poly id='h1'>", "finite numbers"]),
    ("no-shape", '<additional><poly id="h1" type="building" color="1,0,0"/></additional>', ["lacks 'shape'"]),
]


@pytest.mark.parametrize("text, words", [p[1:] for p in POLYS], ids=[p[0] for p in POLYS])
def test_bad_polygon_file_is_one_line_naming_it(tmp_path, text, words):
    path = tmp_path / "odd.poly.xml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        Buildings.from_file(path)
    one_line_naming(err, "odd.poly.xml", *words)


# ---- inputs SUMO itself finds bad: one line naming the file, nothing else printed -------------------

@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_net_with_a_shape_sumo_cannot_read_is_one_line_and_nothing_else(live, straight_net, tmp_path, capfd, backend):
    net, rou = straight_net
    bad = tmp_path / "shape.net.xml"
    bad.write_text(re.sub(r'(<lane [^>]*shape=")[^"]*', r"\g<1>0.00,-1.60 east,-1.60", net.read_text(), count=1))
    with pytest.raises(MobilityInputError) as err:
        live(1.0, net_file=bad, route_files=[rou], backend=backend).start()
    one_line_naming(err, "shape.net.xml", "shape", "east")
    assert capfd.readouterr().err == ""      # in-process SUMO (libsumo) printed its errors to stderr too


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_vehicle_type_error_blames_the_route_file(live, straight_net, tmp_path, backend):
    net, _ = straight_net
    rou = tmp_path / "types.rou.xml"
    rou.write_text('<routes><vType id="t" accel="fast"/><vehicle id="v" type="t" depart="0"><route edges="e"/>'
                   "</vehicle></routes>")
    with pytest.raises(MobilityInputError) as err:
        live(1.0, net_file=net, route_files=[rou], backend=backend).start()
    one_line_naming(err, "types.rou.xml", "accel")
