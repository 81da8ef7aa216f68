"""Helpers for tiny SUMO networks built in tmp folders (imported by conftest and tests)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mobility.sumo_live import sumo_binary, sumo_home

SPEED_MPS = 20.0
# a car that holds the lane's speed limit exactly: no driver imperfection, no speed spread
CONSTANT_CAR = '<vType id="const" sigma="0" speedFactor="1" speedDev="0" accel="100" decel="100" length="5"/>'


def netconvert(tmp: Path, name: str, nodes: str, edges: str) -> Path:
    (tmp / f"{name}.nod.xml").write_text(f"<nodes>{nodes}</nodes>")
    (tmp / f"{name}.edg.xml").write_text(f"<edges>{edges}</edges>")
    net = tmp / f"{name}.net.xml"
    subprocess.run([str(sumo_binary("netconvert")), "-n", str(tmp / f"{name}.nod.xml"), "-e",
                    str(tmp / f"{name}.edg.xml"), "-o", str(net), "--no-warnings", "--no-turnarounds"],
                   check=True, capture_output=True, env=dict(os.environ, SUMO_HOME=str(sumo_home())))
    return net


def one_vehicle_routes(tmp: Path, name: str, edges: str, depart_s: float = 0.0) -> Path:
    rou = tmp / f"{name}.rou.xml"
    rou.write_text(f'<routes>{CONSTANT_CAR}<vehicle id="v0" type="const" depart="{depart_s}" departSpeed="max">'
                   f'<route edges="{edges}"/></vehicle></routes>')
    return rou


def teleport_net(tmp: Path, wall_s: float = 30.0) -> tuple[Path, Path]:
    """Roads e1 -> e2 -> e3; "v0" stops behind a car parked on e1 while a 198 m vehicle fills e2 for
    `wall_s`. With --time-to-teleport 5, SUMO teleports v0 at t = 17 s; it waits off the road until the
    wall drives off, and comes back on e2 at about t = 32 s."""
    net = netconvert(tmp, "jam", '<node id="a" x="0" y="0"/><node id="b" x="300" y="0"/>'
                     '<node id="c" x="500" y="0"/><node id="d" x="900" y="0"/>',
                     f'<edge id="e1" from="a" to="b" numLanes="1" speed="{SPEED_MPS}"/>'
                     '<edge id="e2" from="b" to="c" numLanes="1" speed="10"/>'
                     f'<edge id="e3" from="c" to="d" numLanes="1" speed="{SPEED_MPS}"/>')
    rou = tmp / "jam.rou.xml"
    rou.write_text(f'<routes>{CONSTANT_CAR}<vType id="long" length="198" sigma="0"/>'
                   '<vehicle id="wall" type="long" depart="0" departPos="last"><route edges="e2 e3"/>'
                   f'<stop lane="e2_0" endPos="199" duration="{wall_s:g}"/></vehicle>'
                   '<vehicle id="parked" type="const" depart="0"><route edges="e1 e2 e3"/>'
                   '<stop lane="e1_0" endPos="200" duration="500"/></vehicle>'
                   '<vehicle id="v0" type="const" depart="1" departSpeed="max"><route edges="e1 e2 e3"/></vehicle>'
                   '</routes>')
    return net, rou
