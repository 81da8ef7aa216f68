"""Named random streams split from one root seed (numpy SeedSequence), plus torch seeding."""
from __future__ import annotations

import zlib

import numpy as np


def _name_key(name: str) -> int:
    # crc32 is stable across processes, unlike hash() of a str.
    return zlib.crc32(name.encode("utf-8"))


class RngStreams:
    """`streams.get("mobility")` -> a numpy Generator that depends only on (root seed, name)."""

    def __init__(self, root_seed: int):
        self.root_seed = int(root_seed)
        self._streams: dict[str, np.random.Generator] = {}

    def get(self, name: str) -> np.random.Generator:
        if name not in self._streams:
            seq = np.random.SeedSequence([self.root_seed, _name_key(name)])
            self._streams[name] = np.random.Generator(np.random.PCG64(seq))
        return self._streams[name]

    def seed_for(self, name: str, *keys: int) -> int:
        """A 63-bit integer seed for (name, keys...), e.g. torch seeds per (round, client)."""
        seq = np.random.SeedSequence([self.root_seed, _name_key(name), *map(int, keys)])
        return int(seq.generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1 << 31, 1], dtype=np.uint64))
