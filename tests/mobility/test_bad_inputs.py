"""Bad inputs give one-line errors that name the file or the id."""
from __future__ import annotations

from pathlib import Path

import pytest

from mobility.builders import write_sumocfg
from mobility.errors import MobilityFileNotFoundError, MobilityInputError
from mobility.fcd import FcdReplay, FcdTracks
from mobility.roads import rsus_along_path


def assert_one_line_naming(err: pytest.ExceptionInfo, name: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg


def test_missing_sumocfg(live, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        live(1.0, sumocfg=tmp_path / "nowhere.sumocfg").start()
    assert isinstance(err.value, MobilityFileNotFoundError)
    assert_one_line_naming(err, "nowhere.sumocfg")


def test_route_file_named_in_sumocfg_is_missing(live, straight_net, tmp_path):
    net, _ = straight_net
    cfg = write_sumocfg(tmp_path / "s.sumocfg", net, tmp_path / "gone.rou.xml", 60.0, 0)

    with pytest.raises(MobilityFileNotFoundError) as err:
        live(1.0, sumocfg=cfg).start()
    assert_one_line_naming(err, "gone.rou.xml")


def test_missing_route_file(live, straight_net, tmp_path):
    net, _ = straight_net
    with pytest.raises(MobilityFileNotFoundError) as err:
        live(1.0, net_file=net, route_files=[tmp_path / "missing.rou.xml"]).start()
    assert_one_line_naming(err, "missing.rou.xml")


@pytest.mark.parametrize("backend", ["libsumo", "traci"])
def test_malformed_net_xml(live, straight_net, tmp_path, backend):
    net, rou = straight_net
    bad = tmp_path / "broken.net.xml"
    bad.write_text(net.read_text()[:700])  # cut off mid-file: starts fine, SUMO fails while loading
    cfg = write_sumocfg(tmp_path / "broken.sumocfg", bad, rou, 60.0, 0)

    with pytest.raises(MobilityInputError) as err:
        live(1.0, sumocfg=cfg, backend=backend).start()
    assert_one_line_naming(err, "broken.net.xml")
    assert "malformed XML" in str(err.value)


def test_route_with_an_unknown_edge_names_the_route_file(live, straight_net, tmp_path):
    net, _ = straight_net
    rou = tmp_path / "wrong.rou.xml"
    rou.write_text('<routes><vehicle id="v" depart="0"><route edges="nope"/></vehicle></routes>')

    with pytest.raises(MobilityInputError) as err:
        live(1.0, net_file=net, route_files=[rou]).start()
    assert_one_line_naming(err, "wrong.rou.xml")
    assert "nope" in str(err.value)


def test_a_route_file_given_as_net(live, straight_net):
    _, rou = straight_net
    with pytest.raises(MobilityInputError) as err:
        live(1.0, net_file=rou).start()
    assert_one_line_naming(err, rou.name)


def test_missing_fcd(tmp_path):
    with pytest.raises(MobilityFileNotFoundError) as err:
        FcdReplay(tmp_path / "none.fcd.xml", 1.0).start()
    assert_one_line_naming(err, "none.fcd.xml")


def test_malformed_fcd_fails_when_the_replay_reaches_the_break(tmp_path):
    fcd = tmp_path / "cut.fcd.xml"
    fcd.write_text('<fcd-export>\n<timestep time="0.00"><vehicle id="a" x="0" y="0" angle="90" speed="1"/>'
                   '</timestep>\n<timestep time="1.00"><vehicle id="a" x="1" y="0" angle="90" speed="1"/>'
                   '</timestep>\n<timestep time="2.00"><vehicle id="a" x="2" y=')
    replay = FcdReplay(fcd, 1.0)
    assert replay.start().ids == ("a",)

    with pytest.raises(MobilityInputError) as err:
        replay.step()
        replay.step()
    assert_one_line_naming(err, "cut.fcd.xml")
    with pytest.raises(MobilityInputError) as err:
        FcdTracks.load(fcd)
    assert_one_line_naming(err, "cut.fcd.xml")


def test_fcd_that_is_not_fcd_or_not_gzip(tmp_path, straight_net):
    net, _ = straight_net
    with pytest.raises(MobilityInputError) as err:
        FcdReplay(net, 1.0).start()
    assert_one_line_naming(err, net.name)
    fake_gz = tmp_path / "fake.fcd.xml.gz"
    fake_gz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(MobilityInputError) as err:
        FcdReplay(fake_gz, 1.0).start()
    assert_one_line_naming(err, "fake.fcd.xml.gz")


def test_unknown_edge_id_for_rsus(straight_net):
    net, _ = straight_net
    with pytest.raises(MobilityInputError) as err:
        rsus_along_path(net, 100.0, 50.0, edge_ids=["e", "no_such_edge"])
    assert_one_line_naming(err, "'no_such_edge'")
    assert_one_line_naming(err, net.name)


def test_missing_net_for_rsus(tmp_path: Path):
    with pytest.raises(MobilityFileNotFoundError) as err:
        rsus_along_path(tmp_path / "x.net.xml", 100.0, 50.0)
    assert_one_line_naming(err, "x.net.xml")
