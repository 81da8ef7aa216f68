"""GenFV: AIGC-assisted federated learning with EMD-based selection and a server-side augmented model.

Qiang, Chang and Min, IEEE TMC 24(11), 2025 (arXiv 2503.19676); SCHEMES.md "GenFV". FedAvg with, per round:
1. the metadata phase: every covered vehicle uploads its label histogram (a small real transfer);
2. EMD_n = sum_i |p_n(y=i) - p(y=i)| against the label distribution of every client heard from so far;
3. selection and allocation by the optimizer `genfv` (cosim.optimizers.genfv); model broadcast, local training;
4. on the edge server's GPU queue, while the vehicles train: the generator makes b samples for the labels
   the cohort lacks most (b t0 simulated seconds) and adds them to everything it generated before, and an
   augmented model w_a is trained on that cumulative set from the round's global model (its FLOPs at the
   server's throughput: T_s_cp grows with the set, so b falls as the set fills the round);
5. aggregation w = kappa1 sum_n rho_n w_n + kappa2 w_a, kappa2 = (mean EMD of the aggregated vehicles / 2)^2.
Generators (learning.generators): `pool` (balanced draws from a server-held split no vehicle holds: the
ideal generator), `cvae` (a class-conditional VAE trained on that split at set-up, cached by content hash),
`plugin` (a user's generator, e.g. a local diffusion pipeline, from a Python file).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Generator, Literal, Optional, Union

import numpy as np
import torch
from pydantic import Field, field_validator

from learning.data import TensorDataset
from learning.fl import LocalResult, augmented_aggregate, evaluate, local_train
from learning.generators import deficit_labels, make_generator

from ..configbase import DAY_S, ENERGY_J, ITERATIONS, Frozen, NonNegFloat, PosFloat, PosInt, within
from ..errors import SettingError
from ..optimizers.costs import FedAvgCost
from ..optimizers.genfv import emd, kappa_weights, label_distribution
from ..registry import register_scheme
from ..task import cache_dir
from .common import VehicleResult
from .config import ProtocolConfig
from .fl import FedAvg

HISTOGRAM_BYTES_PER_CLASS = 4          # one int32 count per class on the wire


_GENERATED = within(high=10**6, why="generated samples are made and held in memory every round")


class GeneratorConfig(Frozen):
    """The server's generator: `pool`, `cvae` (options: its hyperparameters, e.g. {latent_dim: 16, epochs: 300})
    or `plugin` (`path`: a local Python file defining make_generator(pool, options); options are passed to it).
    seconds_per_sample: t0, the simulated generation time per sample (T_inf = b t0). cache_dir: where the
    trained cvae is kept (default $COSIM_CACHE_DIR, else ~/.cache/cosim; relative: to the scenario)."""
    kind: Literal["pool", "cvae", "plugin"] = "pool"
    seconds_per_sample: Annotated[NonNegFloat, within(high=3600.0, unit="s", why="an hour per generated sample")] = 0.01
    path: Optional[str] = Field(default=None, validate_default=True)
    options: dict[str, Union[int, float, str, bool]] = {}
    cache_dir: Optional[str] = None

    @field_validator("path")
    @classmethod
    def _plugin_path(cls, value, info):
        if info.data.get("kind") == "plugin" and value is None:
            raise ValueError("a local Python file defining make_generator(pool, options) when kind is 'plugin'")
        return value


class GenfvConfig(ProtocolConfig):
    """GenFV's settings. The optimizer sees every covered vehicle (selection `all`) and keeps those with
    EMD_n <= emd_max whose predicted round fits min(dwell, max_latency_s) (vehicle_selection `genfv`; `none`
    keeps what the selection rule chose). energy_budget_j: E_bar per vehicle and round (None: unbounded).
    augmentation false: kappa2 = 0 and nothing generated (FedAvg). b: the closed form or fixed_b, at most
    max_generated. server_data_fraction: the share of the training set the server holds for its generator."""
    scheme: Literal["genfv"] = "genfv"
    optimizer: str = "genfv"
    selection: str = "all"
    energy_budget_j: Optional[Annotated[PosFloat, ENERGY_J]] = None
    max_latency_s: Optional[Annotated[PosFloat, DAY_S]] = None
    emd_max: Annotated[float, Field(ge=0, le=2)] = 2.0
    vehicle_selection: Literal["genfv", "none"] = "genfv"
    selection_rank: Literal["random", "emd", "latency"] = "random"
    power_control: Literal["sca", "max"] = "sca"
    bandwidth_allocation: Literal["kkt", "equal"] = "kkt"
    max_iterations: Annotated[PosInt, ITERATIONS] = 30
    augmentation: bool = True
    generation_amount: Literal["closed_form", "fixed"] = "closed_form"
    fixed_b: Annotated[int, Field(ge=0), _GENERATED] = 100
    max_generated: Annotated[PosInt, _GENERATED] = 1000
    server_data_fraction: Annotated[float, Field(ge=0, lt=1)] = Field(default=0.1, validate_default=True)
    generator: GeneratorConfig = GeneratorConfig()
    metadata_deadline_s: Annotated[PosFloat, DAY_S] = 1.0

    @field_validator("server_data_fraction")
    @classmethod
    def _pool(cls, value, info):
        gen = info.data.get("generator")
        if value == 0 and info.data.get("augmentation", True) and (gen is None or gen.kind != "plugin"):
            raise ValueError("> 0 for the pool and cvae generators (they draw on the server's own split)")
        return value


def _genfv_baselines(sc) -> dict[str, list[str]]:
    """What the paper compares GenFV with: FedAvg (kappa2 = 0, nothing generated, the same selection and
    allocation), random and all selection, equal bandwidth, maximum power, a fixed generation amount."""
    return {
        "fedavg": ["protocol.augmentation=false"],
        "random_selection": ["protocol.selection=random", "protocol.vehicle_selection=none"],
        "all_selection": ["protocol.selection=all", "protocol.vehicle_selection=none"],
        "equal_bandwidth": ["protocol.bandwidth_allocation=equal"],
        "max_power": ["protocol.power_control=max"],
        "fixed_b": ["protocol.generation_amount=fixed"],
    }


@dataclass
class Augmented:
    """The server's part of a round: the samples it made and the augmented model (None if it did not finish)."""

    samples: int
    result: Optional[LocalResult]


@register_scheme("genfv", config=GenfvConfig, cost=FedAvgCost(), baselines=_genfv_baselines)
class Genfv(FedAvg):
    """GenFV (TMC 2025): label histograms up, EMD selection, FedAvg rounds plus a server-trained w_a."""

    round_fields = ("kappa2", "mean_emd", "b", "generated_total")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._known: dict[int, tuple[int, ...]] = {}       # label histograms heard, by client
        self._generated: list[tuple[torch.Tensor, torch.Tensor]] = []     # (images, labels) per generation
        self.generator = self._build_generator() if self.proto.augmentation else None

    def _build_generator(self):
        g, sc = self.proto.generator, self.scenario
        pool = self.task.server_data()
        cache = cache_dir(g.cache_dir, sc.base_dir)
        plugin = sc.path(g.path) if g.path is not None else None
        try:
            return make_generator(g.kind, pool, cache_dir=cache, options=dict(g.options), plugin_path=plugin)
        except FileNotFoundError as exc:
            raise SettingError("protocol.generator.path", g.path, f"an existing Python file ({exc})") from None
        except (TypeError, ValueError) as exc:
            field = "protocol.generator.path" if g.kind == "plugin" else "protocol.generator.options"
            value = g.path if g.kind == "plugin" else dict(g.options)
            raise SettingError(field, value, f"a working {g.kind} generator ({exc})") from None

    # ---- the metadata phase and what the optimizer sees ------------------------------------------
    def metadata(self, r: int, vehicles) -> Generator:
        nbytes = self.task.train.num_classes * HISTOGRAM_BYTES_PER_CLASS
        heard = yield from self.upload_metadata(r, vehicles, "labels", lambda v: nbytes, self.proto.metadata_deadline_s)
        for v in heard:
            self._known[v.client] = self.task.label_histogram(v.client)
        return heard

    def distribution(self) -> np.ndarray:
        """p(y): the pooled label distribution of every client whose histogram has arrived."""
        return label_distribution(np.sum([self._known[c] for c in sorted(self._known)], axis=0))

    def snapshot_extra(self, r: int, vehicles) -> dict:
        return {"label_distribution": self.distribution().tolist(), "generated_previous": self.generated_total,
                "selection_seed": self.sim.streams.seed_for("genfv-selection", r)}

    @property
    def generated_total(self) -> int:
        return sum(len(y) for _, y in self._generated)

    # ---- the round ----------------------------------------------------------------------------
    def start_round(self, r: int, plan):
        procs = super().start_round(r, plan)
        b = int(plan.round.get("b", 0)) if self.generator is not None else 0
        if b > 0 or self._generated:
            procs.append(self.sim.spawn(self._augment(r, plan, b)))
        return procs

    def _augment(self, r: int, plan, b: int) -> Generator:
        """Generate b samples for the labels the cohort lacks most, then train w_a on every sample generated so far
        (server GPU queue)."""
        task, cfg, streams = self.task, self.task.config, self.sim.streams
        counts = np.sum([task.label_histogram(self.sim.world.vehicles[v].client) if v in self.sim.world.vehicles
                         else np.zeros(task.train.num_classes, dtype=int) for v in plan.selected], axis=0)
        labels = torch.as_tensor(deficit_labels(self.distribution(), counts, b), dtype=torch.int64)
        gen = torch.Generator().manual_seed(streams.seed_for("generate", r))
        t0 = self.proto.generator.seconds_per_sample
        if b > 0:
            ok, x = yield from self.server_job(r, "server.generate", 0.0, lambda: self.generator.sample(labels, gen),
                                               owner=f"generate {b}", seconds=b * t0)
            if not ok:
                return Augmented(0, None)
            self._generated.append((x, labels))
        data = TensorDataset(torch.cat([x for x, _ in self._generated]), torch.cat([y for _, y in self._generated]),
                             task.train.num_classes)
        flops = task.train_flops_per_sample * len(data) * cfg.local_epochs
        ok, result = yield from self.server_job(
            r, "server.train", flops, lambda: local_train(task.model, task.global_state, data, epochs=cfg.local_epochs,
                                                          batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                                                          seed=streams.seed_for("augmented-train", r)),
            owner="augmented model")
        return Augmented(b, result if ok else None)

    def finish_round(self, r: int, t0: float, first_span: int, plan, results: list) -> Generator:
        task = self.task
        aug = next((x for x in results if isinstance(x, Augmented)), Augmented(0, None))
        vehicles = [x for x in results if isinstance(x, VehicleResult)]
        done = [x for x in vehicles if x.result is not None]
        p = self.distribution()
        mean_emd = float(np.mean([emd(task.label_histogram(x.client), p) for x in done])) if done else 0.0
        kappa2 = kappa_weights(mean_emd)[1] if aug.result is not None else 0.0
        if done:
            models = len(done) + (aug.result is not None)
            yield from self.aggregate_span(r, 2.0 * sum(v.numel() for v in task.global_state.values()) * models)
            task.global_state = augmented_aggregate([(x.result.state, x.result.num_samples) for x in done],
                                                    aug.result.state if aug.result is not None else None, kappa2)
        b = int(plan.round.get("b", 0)) if self.generator is not None else 0
        acc, loss = evaluate(task.model, task.global_state, task.test)
        self.record_round(r, t0, first_span, plan, vehicles, len(done), acc, loss, kappa2=kappa2, mean_emd=mean_emd,
                          b=b if aug.samples else 0, generated_total=self.generated_total)
