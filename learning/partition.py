"""Client partitions of a labelled data set: IID, Dirichlet(alpha), shards; label histograms and EMD."""
from __future__ import annotations

import numpy as np


def partition_iid(labels: np.ndarray, num_clients: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle and deal indices into num_clients near-equal parts (sorted index arrays)."""
    perm = rng.permutation(len(labels))
    return [np.sort(part) for part in np.array_split(perm, num_clients)]


def partition_dirichlet(labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator,
                        min_size: int = 2, max_tries: int = 100) -> list[np.ndarray]:
    """Per class, split its indices among clients with proportions ~ Dirichlet(alpha).

    Redraws until every client holds at least min_size samples (Hsu et al., 2019, arXiv 1909.06335).
    Raises ValueError when that cannot be met within max_tries.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(num_clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            props = rng.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(props)[:-1] * len(idx)).astype(int)
            for client, chunk in enumerate(np.split(idx, cuts)):
                parts[client].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"Dirichlet(alpha={alpha}) left a client with fewer than {min_size} samples "
                     f"after {max_tries} draws; use fewer clients or a larger alpha")


def partition_shards(labels: np.ndarray, num_clients: int, shards_per_client: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """Sort by label, cut into num_clients*shards_per_client shards, deal shards at random (McMahan et al., 2017)."""
    order = np.argsort(np.asarray(labels), kind="stable")
    shards = np.array_split(order, num_clients * shards_per_client)
    deal = rng.permutation(len(shards)).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in deal]


def label_histogram(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Label distribution p(y=i) as a probability vector of length num_classes."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(float)
    return counts / max(counts.sum(), 1.0)


def emd(p_client: np.ndarray, p_global: np.ndarray) -> float:
    """GenFV's label-distribution distance EMD_n = sum_i |p_n(y=i) - p(y=i)| (SCHEMES.md, GenFV)."""
    return float(np.abs(np.asarray(p_client) - np.asarray(p_global)).sum())
