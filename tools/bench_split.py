"""Split-learning overhead: co-simulated SFL-V1 of ResNet-18 against a bare split-training loop.

SFL-V1 of ResNet-18 (a) through the co-simulator (mobility, channel, per-batch transfers, edge-server
queue, trace) and (b) as a bare PyTorch loop doing the identical split training, in one invocation.

The bare loop replays, per co-simulated round, which vehicles trained and were averaged, with the same
seeds, batches, per-vehicle momentum buffers and |D_n| weights, calling learning.split directly; both end
with the same model when every vehicle that trained was averaged. The ratio of wall times is what the
simulation costs. Last line: {"bench": "split", "value": <cosim / bare wall time>, "unit": "x bare PyTorch", ...}
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from benchlib import run_cosim  # noqa: E402
from cosim.rng import RngStreams  # noqa: E402
from cosim.scenario import load_scenario  # noqa: E402
from cosim.task import build_task  # noqa: E402
from learning.fl import aggregate, evaluate  # noqa: E402
from learning.split import client_backward, client_forward, make_sgd, server_step, to_server  # noqa: E402


def _side(source, names, trainable, store, owner, lr, momentum):
    state = {k: source[k].detach().clone().requires_grad_(k in trainable) for k in names}
    opt = make_sgd([state[k] for k in names if k in trainable], lr, momentum)
    for k, buf in store.get(owner, {}).items():
        opt.state[state[k]]["momentum_buffer"] = buf
    return state, opt


def _keep(state, opt, store, owner):
    store[owner] = {k: opt.state[p]["momentum_buffer"] for k, p in state.items()
                    if opt.state.get(p, {}).get("momentum_buffer") is not None}


def run_bare(sc, rounds_log):
    """The numeric work alone: data, partition, init, then per round each vehicle's split batches (client
    forward, server step on its server-side copy, client backward), both sides averaged, evaluation."""
    t0 = time.perf_counter()
    streams = RngStreams(sc.seed)
    task = build_task(sc.learning, streams, sc.base_dir)
    cfg, cut, cap = task.config, sc.protocol.cut, sc.protocol.batches_per_round
    model = task.model
    model.load_state_dict(task.global_state)
    client = set(model.client_param_names(cut))
    client_names = [k for k in task.global_state if k in client]
    server_names = [k for k in task.global_state if k not in client]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    client_mom, server_mom = {}, {}
    state, acc = task.global_state, None
    for row in rounds_log:
        r = row["round"]
        model.train()
        updates = {}
        for vid, c in zip(row["vehicles_trained"], row["clients_trained"]):
            cstate, copt = _side(state, client_names, trainable, client_mom, vid, cfg.lr, cfg.momentum)
            sstate, sopt = _side(state, server_names, trainable, server_mom, vid, cfg.lr, cfg.momentum)
            data = task.client_data(c)
            gen = torch.Generator().manual_seed(streams.seed_for("local-train", r, c))
            count = 0
            for _ in range(cfg.local_epochs):
                perm = torch.randperm(len(data), generator=gen)
                for start in range(0, len(data), cfg.batch_size):
                    if cap is not None and count >= cap:
                        break
                    count += 1
                    idx = perm[start:start + cfg.batch_size]
                    act = client_forward(model, cut, data.x[idx], cstate)
                    grad = server_step(model, cut, to_server(act), data.y[idx], sopt, state=sstate)[1]
                    client_backward(act, grad, copt)
            _keep(cstate, copt, client_mom, vid)
            _keep(sstate, sopt, server_mom, vid)
            updates[vid] = ({k: v.detach() for k, v in cstate.items()}, {k: v.detach() for k, v in sstate.items()},
                            task.client_size(c))
        done = [updates[v] for v in row["vehicles_aggregated"]]
        if done:
            parts = aggregate([(u[0], u[2]) for u in done])
            parts.update(aggregate([(u[1], u[2]) for u in done]))
            state = {k: parts.get(k, state[k]) for k in state}
        acc, _ = evaluate(model, state, task.test)
    return time.perf_counter() - t0, acc, state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(REPO / "scenarios" / "sfl_resnet18.yaml"))
    p.add_argument("--vehicles", type=int, default=4)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batches", type=int, default=5, help="batches per vehicle and round")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    sc = load_scenario(args.scenario, [f"protocol.rounds={args.rounds}", f"protocol.vehicles_per_round={args.vehicles}",
                                       f"protocol.batches_per_round={args.batches}", "protocol.scheme=sfl_v1"])
    run_cosim(sc)                                # warm-up: imports, allocator, first-call costs
    cosim_s, bare_s = [], []
    for _ in range(args.repeats):                # interleaved, best of n for each side
        t, result = run_cosim(sc)
        cosim_s.append(t)
        cosim_state = result.task.global_state        # the final states are compared
        t, bare_acc, bare_state = run_bare(sc, result.rounds)
        bare_s.append(t)
    cosim_acc = result.rounds[-1]["accuracy"]
    equal = all(torch.equal(cosim_state[k], bare_state[k]) for k in cosim_state)
    task, bs, epochs = result.task, sc.learning.batch_size, sc.learning.local_epochs
    batches = sum(min(args.batches, -(-task.client_size(c) // bs) * epochs)
                  for r in result.rounds for c in r["clients_trained"])
    ratio = min(cosim_s) / min(bare_s)
    print(f"co-simulator: {min(cosim_s):.3f} s wall (runs: {', '.join(f'{t:.3f}' for t in cosim_s)}), "
          f"final accuracy {cosim_acc:.4f}, {result.summary['sim_time_s']:.1f} s simulated, "
          f"{result.summary['spans']} spans")
    print(f"bare PyTorch: {min(bare_s):.3f} s wall (runs: {', '.join(f'{t:.3f}' for t in bare_s)}), "
          f"final accuracy {bare_acc:.4f}")
    print(f"ratio {ratio:.3f}; final states equal: {equal}")
    print(json.dumps({"bench": "split", "value": round(ratio, 4), "unit": "x bare PyTorch",
                      "cosim_wall_s": round(min(cosim_s), 4), "bare_wall_s": round(min(bare_s), 4),
                      "cosim_accuracy": cosim_acc, "bare_accuracy": bare_acc,
                      "accuracy_equal": cosim_acc == bare_acc, "state_equal": equal,
                      "model": sc.learning.model, "arch": dict(sc.learning.arch), "cut": sc.protocol.cut,
                      "scheme": sc.protocol.scheme, "vehicles_per_round": args.vehicles, "rounds": args.rounds,
                      "batches_per_vehicle_round": args.batches, "split_batches": batches,
                      "torch_threads": torch.get_num_threads(), "target": 1.15}))


if __name__ == "__main__":
    main()
