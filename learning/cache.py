"""What the set-up caches share (the cvae generator, the pretrained backbone): content hashes of tensors,
and saving a file so that concurrent runs never read a half-written one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch


def digest_tensor(h, t: torch.Tensor, prefix: str = "") -> None:
    """Feed `prefix`, the tensor's dtype and shape, then its bytes into the hash object `h`."""
    t = t.detach().cpu().contiguous()
    h.update(f"{prefix}{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.numpy().tobytes())


def save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, then rename it: concurrent runs write the same bytes and
    the last one wins, and a reader never sees a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
