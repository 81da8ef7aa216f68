"""FCD replay against the live run that wrote the trace; interpolation; per-vehicle tracks."""
from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from mobility.fcd import FcdReplay, FcdTracks, _lerp_angle_deg

STEP_S = 0.5
N_STEPS = 200  # 100 s of the tiny grid: turns, stops at lights, arrivals and departures


@pytest.fixture
def recorded(live, tiny_grid, tmp_path):
    """Snapshots of a live run of the tiny grid and the FCD trace it wrote."""
    fcd = tmp_path / "grid.fcd.xml"
    src = live(STEP_S, sumocfg=tiny_grid.sumocfg, seed=7, fcd_output=fcd)
    snaps = [src.start().loaded()] + [src.step().loaded() for _ in range(N_STEPS)]
    src.close()  # SUMO finishes the file on close
    return snaps, fcd


def assert_same(a, b, tol=1e-6):
    assert a.t_s == pytest.approx(b.t_s) and a.ids == b.ids
    np.testing.assert_allclose(a.xy_m, b.xy_m, rtol=0, atol=tol)
    np.testing.assert_allclose(a.speed_mps, b.speed_mps, rtol=0, atol=tol)
    dh = (a.heading_rad - b.heading_rad + np.pi) % (2 * np.pi) - np.pi
    np.testing.assert_allclose(dh, 0.0, atol=tol)


def test_replay_reproduces_the_live_run(recorded):
    live_snaps, fcd = recorded
    replay = FcdReplay(fcd, STEP_S)

    replayed = [replay.start()] + [replay.step() for _ in range(N_STEPS)]
    replay.close()

    assert sum(len(s.ids) for s in live_snaps) > 500
    for a, b in zip(live_snaps, replayed):
        assert_same(a, b)


def test_gzipped_replay_at_a_coarser_step_hits_every_other_timestep(recorded, tmp_path):
    live_snaps, fcd = recorded
    gz = tmp_path / "grid.fcd.xml.gz"
    with open(fcd, "rb") as f, gzip.open(gz, "wb") as g:
        shutil.copyfileobj(f, g)

    with FcdReplay(gz, 2 * STEP_S) as replay:
        replayed = [replay.start()] + [replay.step() for _ in range(N_STEPS // 2)]

    for k, b in enumerate(replayed):
        a = live_snaps[2 * k]
        assert b.ids == a.ids
        np.testing.assert_allclose(b.xy_m, a.xy_m, rtol=0, atol=1e-6)


def test_finer_replay_interpolates_vehicles_present_at_both_ends(recorded):
    live_snaps, fcd = recorded
    with FcdReplay(fcd, STEP_S / 2) as replay:
        replayed = [replay.start()] + [replay.step() for _ in range(2 * N_STEPS)]

    for k in range(N_STEPS):
        before, after, mid = live_snaps[k], live_snaps[k + 1], replayed[2 * k + 1]
        both = sorted(set(before.ids) & set(after.ids))
        assert mid.ids == tuple(both) and mid.t_s == pytest.approx((k + 0.5) * STEP_S)
        i0 = [before.ids.index(v) for v in both]
        i1 = [after.ids.index(v) for v in both]
        np.testing.assert_allclose(mid.xy_m, (before.xy_m[i0] + after.xy_m[i1]) / 2, rtol=0, atol=1e-6)


def test_replay_after_the_trace_ends_is_empty(recorded):
    _, fcd = recorded
    with FcdReplay(fcd, 10.0) as replay:
        snaps = [replay.start()] + [replay.step() for _ in range(15)]  # the trace stops at 100 s

    assert len(snaps[10].ids) > 0
    assert all(s.ids == () and s.xy_m.shape == (0, 2) for s in snaps[11:])
    assert snaps[-1].t_s == pytest.approx(150.0)


def test_angles_interpolate_the_short_way_round():
    np.testing.assert_allclose(_lerp_angle_deg(np.array([350.0, 10.0, 90.0]), np.array([10.0, 350.0, 180.0]), 0.5),
                               [0.0, 0.0, 135.0])


def test_tracks_hold_each_vehicles_whole_trajectory(recorded):
    live_snaps, fcd = recorded
    tracks = FcdTracks.load(fcd)

    vid = live_snaps[40].ids[0]
    times, xy = tracks.track(vid)
    k = [i for i, s in enumerate(live_snaps) if vid in s.ids]
    np.testing.assert_allclose(times[: len(k)], [live_snaps[i].t_s for i in k])
    np.testing.assert_allclose(xy[: len(k)], [live_snaps[i].xy_m[live_snaps[i].ids.index(vid)] for i in k],
                               atol=1e-6)
    with pytest.raises(KeyError, match="'nobody'"):
        tracks.track("nobody")
