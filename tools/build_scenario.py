"""Build a SUMO scenario bundle (net, routes, sumocfg): the same as `cosim scenario build`.

    python tools/build_scenario.py highway --out scenarios/highway --length-m 5000 --lanes 3
    python tools/build_scenario.py urban_grid --out scenarios/urban_grid --grid-n 5 --block-m 200
    python tools/build_scenario.py routes --net '$SUMO_HOME/tools/game/DRT/osm.net.xml' --out scenarios/drt_city \
        --name drt_city --vehicles-per-hour 900 --duration-s 900
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosim.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["scenario", "build", *sys.argv[1:]]))
