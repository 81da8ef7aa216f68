"""ST-SFLora on the clock: the frozen side's forward and the importance upload before the plan, then each
batch's [CLS, top-K, merge] tokens up, sized from the real tensor, and the server's adapter steps; the
prediction equal to the timeline when nothing moves; the baselines' traffic and device memory; the
pretrained backbone from the cache or from the file `cosim pretrain` writes."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cosim import registry
from cosim.cli import main
from cosim.errors import ScenarioError, SettingError
from learning.fl import state_nbytes
from learning.tokens import tokens_sent

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "split"))
from split_testlib import run, tree  # noqa: E402

VEHICLES = [{"id": "a", "x_m": 60.0}, {"id": "b", "x_m": 200.0}, {"id": "c", "x_m": 350.0}]
ARCH = {"patch_size": 4, "embed_dim": 32, "depth": 3, "num_heads": 4, "mlp_ratio": 2.0}
N, D = 16, 32                                   # 16x16 digits in 4x4 patches; the embedding width


def _tree(cache: Path, **protocol):
    t = tree(vehicles=VEHICLES,
             learning={"image_size": 16, "model": "vit_micro", "arch": ARCH, "num_clients": 10, "batch_size": 16,
                       "local_epochs": 2, "lr": 0.01, "momentum": 0.9,
                       "pretrained": {"fraction": 0.2, "epochs": 2, "cache_dir": str(cache)}},
             protocol={"scheme": "st_sflora", "cut": 2, "rounds": 2, "vehicles_per_round": 3, "k_min": 4,
                       "round_deadline_s": 50, **protocol})
    t["devices"] = {"server": {"flops_per_s": 1e11, "gpu_slots": 3}}      # a slot each: no queueing
    t["channel"] = {**t["channel"], "uplink_bandwidth_hz": 1e6,       # narrow, so that the energy budget binds
                    "rsu_noise_figure_db": 0.0, "vehicle_noise_figure_db": 0.0}
    return t


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _decisions(path: Path) -> list[dict]:
    return pq.read_table(path / "decisions.parquet").to_pylist()


def test_importance_before_the_plan_then_tokens_and_server_steps(tmp_path, cache):
    got = run(tmp_path, _tree(cache, energy_budget_j=2e-3))
    rows = _decisions(tmp_path / "run")
    for r in range(2):
        spans = [s for s in got.spans if s["round"] == r]
        plan_t = next(s["t_start_s"] for s in spans if s["kind"] == "optimize")
        imp = [s for s in spans if s["payload"] == "importance"]
        fwd = [s for s in spans if s["kind"] == "compute.fwd"]
        assert len(imp) == len(fwd) == 3 and {s["bytes"] for s in imp} == {N * 4}
        assert max(s["t_end_s"] for s in imp) <= plan_t
        assert all(f["t_end_s"] <= i["t_start_s"] for f in fwd for i in imp if i["actor"] == f["actor"])
        assert not [s for s in spans if s["kind"] in ("compute.bwd", "compute.train")]
        assert not [s for s in spans if s["payload"] in ("gradients", "activations", "lora")]
        for row in (x for x in rows if x["round"] == r):
            k = row["tokens"]
            assert 4 <= k <= N
            ups = [s for s in spans if s["actor"] == row["vehicle"] and s["payload"] == "tokens"]
            assert ups and min(s["t_start_s"] for s in ups) >= plan_t
            client = dict(zip(got.rounds[r]["vehicles_trained"], got.rounds[r]["clients_trained"]))[row["vehicle"]]
            samples = got.task.client_size(client)
            assert sum(s["bytes"] for s in ups) == samples * tokens_sent(k, N) * D * 4
            assert all(s["bytes"] % (tokens_sent(k, N) * D * 4) == 0 for s in ups)
    backbone = [s for s in got.spans if s["payload"] == "model"]
    assert sorted(s["actor"] for s in backbone) == ["a", "b", "c"] and {s["round"] for s in backbone} == {0}
    g, model = got.task.global_state, got.task.model
    assert {s["bytes"] for s in backbone} == {state_nbytes({k: g[k] for k in model.client_param_names(2)})}


def test_prediction_is_the_timeline_when_nothing_moves(tmp_path, cache):
    run(tmp_path, _tree(cache, energy_budget_j=2e-3))
    for row in _decisions(tmp_path / "run"):
        assert row["status"] == "completed"
        assert row["measured_latency_s"] == pytest.approx(row["predicted_latency_s"], rel=1e-9)
        assert row["measured_energy_j"] == pytest.approx(row["predicted_energy_j"], rel=1e-9)
        assert row["measured_energy_j"] <= 2e-3 * (1 + 1e-9)


def test_top_k_sends_proportionally_fewer_token_bytes_than_full(tmp_path, cache):
    top = run(tmp_path, _tree(cache, energy_budget_j=2e-3), "top")
    full = run(tmp_path, _tree(cache, energy_budget_j=2e-3, token_selection="full"), "full")
    tok = {name: sum(s["bytes"] for s in g.spans if s["payload"] == "tokens") for name, g in (("top", top), ("full", full))}
    ks = [row["tokens"] for row in _decisions(tmp_path / "top")]
    assert {row["tokens"] for row in _decisions(tmp_path / "full")} == {N}
    assert max(ks) < N and tok["top"] < tok["full"]
    assert [r["k_eval"] for r in full.rounds] == [N, N]
    assert all(r["accuracy"] == r["accuracy_all_tokens"] for r in full.rounds)


def test_same_seed_same_bytes_and_the_kept_patches(tmp_path, cache):
    t = _tree(cache, energy_budget_j=2e-3, rounds=1)
    run(tmp_path, t, "one")
    run(tmp_path, t, "two")
    for name in ("rounds.csv", "spans.parquet", "decisions.parquet", "summary.json", "kept_patches.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert main(["plot", str(tmp_path / "one")]) == 0
    assert (tmp_path / "one" / "plots" / "kept_patches.png").is_file()


def test_a_deadline_in_the_token_phase_drops_the_late_and_the_run_goes_on(tmp_path, cache):
    slow = _tree(cache, energy_budget_j=2e-3)
    slow["devices"]["server"] = {"flops_per_s": 2e8, "gpu_slots": 1}          # the server's steps queue up
    slow["protocol"]["round_deadline_s"] = 0.8
    got = run(tmp_path, slow)
    assert [r["round"] for r in got.rounds] == [0, 1]
    assert any(r["completed"] < 3 for r in got.rounds)
    cut = [s for s in got.spans if s["status"] == "dropped" and s["cause"] == "deadline"]
    assert cut and {s["kind"] for s in cut} <= {"server.compute", "tx.ul"}
    statuses = {row["status"] for row in _decisions(tmp_path / "run")}
    assert any(s.startswith("dropped:deadline") for s in statuses)


@pytest.mark.parametrize("scheme", ["fed_lora", "local_lora", "split_lora", "sflora"])
def test_baselines_traffic_and_device_memory(tmp_path, cache, scheme):
    st = run(tmp_path, _tree(cache, rounds=1), "st")
    t = _tree(cache, rounds=1, scheme=scheme, optimizer="baseline")
    fields = registry.scheme(scheme).config.model_fields
    t["protocol"] = {k: v for k, v in t["protocol"].items() if k in fields}
    got = run(tmp_path, t, scheme)
    pay = {}
    for s in got.spans:
        pay.setdefault((s["kind"], s["payload"]), []).append(s["bytes"])
    trainable = [n for n, p in got.task.model.named_parameters() if p.requires_grad]
    g = got.task.global_state
    adapters = sum(g[n].numel() * g[n].element_size() for n in trainable)
    assert len(pay[("tx.dl", "model")]) == 3                      # the frozen backbone, once each
    if scheme == "fed_lora":
        assert pay[("tx.ul", "lora")] == [adapters] * 3 and pay[("tx.dl", "lora")] == [adapters] * 3
    if scheme == "local_lora":
        assert ("tx.ul", "lora") not in pay and not [s for s in got.spans if s["kind"] == "tx.ul"]
    if scheme in ("split_lora", "sflora"):
        client = [n for n in trainable if n.startswith(("blocks.0.", "patch_embed", "cls_token", "pos_embed"))]
        assert pay[("tx.ul", "lora")] == [sum(g[n].numel() * g[n].element_size() for n in client)] * 3
        assert ("tx.ul", "activations") in pay and ("tx.dl", "gradients") in pay
    mem = got.rounds[0]["device_memory_bytes"]
    assert mem > st.rounds[0]["device_memory_bytes"] > 0
    assert got.rounds[0]["completed"] == 3


def test_pretrain_writes_the_checkpoint_a_run_then_reads(tmp_path, cache):
    import yaml

    t = _tree(cache, energy_budget_j=2e-3, rounds=1)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(t))
    assert main(["pretrain", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "w.pt")]) == 0
    run(tmp_path, t, "cached")
    t["learning"]["pretrained"] = {"checkpoint": str(tmp_path / "w.pt"), "fraction": 0.2}
    run(tmp_path, t, "file")
    for name in ("rounds.csv", "spans.parquet", "decisions.parquet"):
        assert (tmp_path / "cached" / name).read_bytes() == (tmp_path / "file" / name).read_bytes(), name


@pytest.mark.parametrize("edit, field", [
    (lambda t: t["learning"].update(model="cnn", arch={}), "learning.model"),
    (lambda t: t["protocol"].update(cut=1), "protocol.cut"),
    (lambda t: t["learning"].update(pretrained={"checkpoint": "missing.pt"}), "learning.pretrained.checkpoint"),
    (lambda t: t["learning"].update(pretrained={"fraction": 0.0}), "learning.pretrained.fraction"),
    (lambda t: t["protocol"].update(k_min=0), "protocol.k_min"),
])
def test_bad_settings_are_one_line(tmp_path, cache, edit, field):
    t = _tree(cache, rounds=1)
    edit(t)
    with pytest.raises((ScenarioError, SettingError)) as err:
        run(tmp_path, t)
    assert field in str(err.value) and "\n" not in str(err.value).strip()
