"""Split learning learns: SFL-V1 on digits reaches 85 % test accuracy in a few rounds, and a Dirichlet(0.1)
partition (most vehicles hold two or three classes) is visibly harder than IID with everything else equal."""
from __future__ import annotations

import csv

from split_testlib import run, tree

FIVE = [{"id": f"v{i}", "x_m": 50.0 + 40 * i} for i in range(5)]


def _sfl_v1(tmp_path, partition, name):
    t = tree(vehicles=FIVE, learning={"num_clients": 5, "batch_size": 16, "lr": 0.05, "momentum": 0.9,
                                      "partition": partition},
             protocol={"scheme": "sfl_v1", "cut": 1, "rounds": 5})
    return run(tmp_path, t, name)


def test_sfl_v1_learns_digits_and_dirichlet_is_harder_than_iid(tmp_path):
    iid = _sfl_v1(tmp_path, {"kind": "iid"}, "iid")
    skewed = _sfl_v1(tmp_path, {"kind": "dirichlet", "alpha": 0.1}, "dirichlet")
    acc_iid = [r["accuracy"] for r in iid.rounds]
    acc_dir = [r["accuracy"] for r in skewed.rounds]
    assert all(r["completed"] == 5 for r in iid.rounds + skewed.rounds)
    assert acc_iid[-1] >= 0.85, acc_iid
    assert acc_dir[-1] <= acc_iid[-1] - 0.15, (acc_iid, acc_dir)
    # rounds.csv says so too
    with open(tmp_path / "iid" / "rounds.csv") as fh:
        assert float(list(csv.DictReader(fh))[-1]["accuracy"]) == acc_iid[-1]
