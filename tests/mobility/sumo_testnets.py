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
