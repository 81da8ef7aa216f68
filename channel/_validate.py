"""Argument checks shared by the channel modules; errors name the argument, the value and the need."""
from __future__ import annotations

import numpy as np


def _first_bad(arr: np.ndarray, ok: np.ndarray):
    return arr[~ok].flat[0] if arr.ndim else arr.item()


def positive_array(name: str, value) -> np.ndarray:
    """`value` as a float array; raises ValueError unless every element is finite and > 0."""
    arr = np.asarray(value, dtype=float)
    ok = np.isfinite(arr) & (arr > 0)
    if not np.all(ok):
        raise ValueError(f"{name} must be finite and > 0, got {_first_bad(arr, ok)!r}")
    return arr


def nonnegative_array(name: str, value) -> np.ndarray:
    """`value` as a float array; raises ValueError unless every element is finite and >= 0."""
    arr = np.asarray(value, dtype=float)
    ok = np.isfinite(arr) & (arr >= 0)
    if not np.all(ok):
        raise ValueError(f"{name} must be finite and >= 0, got {_first_bad(arr, ok)!r}")
    return arr


def finite_array(name: str, value) -> np.ndarray:
    """`value` as a float array; raises ValueError unless every element is finite."""
    arr = np.asarray(value, dtype=float)
    ok = np.isfinite(arr)
    if not np.all(ok):
        raise ValueError(f"{name} must be finite, got {_first_bad(arr, ok)!r}")
    return arr


def choice(name: str, value, choices) -> None:
    """Raises ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")


def generator(name: str, rng, why: str) -> np.random.Generator:
    """Returns `rng` if it is a numpy Generator; raises ValueError saying why one is needed."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name} must be a numpy.random.Generator ({why}), got {rng!r}")
    return rng
