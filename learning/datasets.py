"""Loaders for image data sets stored as local files in their original formats (no downloads).

MNIST and Fashion-MNIST (idx files, optionally gzipped), CIFAR-10 and CIFAR-100 (python pickle batches),
GTSRB (Final_Training/Images/000NN/*.ppm with GT-000NN.csv, Final_Test with GT-final_test.csv, or one
folder per class). Each returns a `TensorDataset` with x float32 (N, C, H, W) in [0, 1] and y int64.
A missing file raises FileNotFoundError naming the file and the directories searched; a file that is there
but unreadable (corrupt, truncated, the wrong format, labels out of range) raises ValueError naming it, on one
line.
"""
from __future__ import annotations

import csv
import gzip
import io
import math
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .data import TensorDataset

# --------------------------------------------------------------------------------------------- helpers


def _find(root: Path, name: str, subdirs: tuple[str, ...], what: str, gz: bool = False) -> Path:
    """First existing `name` (or `name.gz` when gz) in root or root/<subdir>; FileNotFoundError otherwise."""
    return _find_in([root] + [root / s for s in subdirs], name, what, gz)


def _find_in(dirs: list[Path], name: str, what: str, gz: bool = False) -> Path:
    dirs = list(dict.fromkeys(dirs))
    names = [name, name + ".gz"] if gz else [name]
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    alt = f" (or {name}.gz)" if gz else ""
    raise FileNotFoundError(f"{what}: file {name!r}{alt} not found in {', '.join(str(d) for d in dirs)}")


def _one_line(text: object, max_chars: int = 300) -> str:
    """Whitespace and newlines collapsed, cut to `max_chars` (messages go on one line)."""
    s = " ".join(str(text).split())
    return s if len(s) <= max_chars else s[: max_chars - 3] + "..."


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; FileNotFoundError if it is gone, ValueError naming it if it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({_one_line(e.strerror or e)})") from None


def _check_labels(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Labels as int64, checked to be whole numbers in 0 .. num_classes - 1 (ValueError naming `where`)."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.ndim != 1:
        raise ValueError(f"{where}: expected a list of integer class labels, got {labels.dtype} with shape "
                         f"{labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"{where}: label {int(bad)} outside 0..{num_classes - 1} ({num_classes} classes)")
    return labels.astype(np.int64)


def _resize(x: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to (image_size, image_size); antialiased when shrinking."""
    if image_size is None or tuple(x.shape[-2:]) == (image_size, image_size):
        return x.contiguous()
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    shrink = image_size < min(x.shape[-2:])
    out = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp_(0.0, 1.0).contiguous()


def _dataset(images_u8: np.ndarray, labels: np.ndarray, num_classes: int, image_size: int | None) -> TensorDataset:
    images_u8 = np.ascontiguousarray(images_u8)
    if not images_u8.flags.writeable:  # idx files are read with np.frombuffer
        images_u8 = images_u8.copy()
    x = torch.from_numpy(images_u8).to(torch.float32).div_(255.0)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return TensorDataset(_resize(x, image_size), y, num_classes)


# ------------------------------------------------------------------------------------ MNIST family

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (LeCun's MNIST format; gzip when the name ends in .gz).

    Raises ValueError naming the file when the header or the size is wrong, or the gzip is corrupt or
    truncated.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:      # not gzip, a bad CRC, cut off
            raise ValueError(f"{path}: not a readable gzip file ({type(e).__name__}: {_one_line(e)})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (magic {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: idx header of {ndim} dimensions cut off ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: header says {dims} ({expected} bytes) but holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _load_idx_pair(root: str | Path, train: bool, image_size: int | None, what: str) -> TensorDataset:
    root = Path(root)
    prefix = "train" if train else "t10k"
    images_path = _find(root, f"{prefix}-images-idx3-ubyte", ("raw",), what, gz=True)
    labels_path = _find(root, f"{prefix}-labels-idx1-ubyte", ("raw",), what, gz=True)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8 or min(images.shape[1:], default=0) < 1:
        raise ValueError(f"{images_path}: expected unsigned-byte images (N, rows, columns), got {images.dtype} "
                         f"{images.shape}")
    if labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{labels_path}: {labels.shape} labels for {images.shape[0]} images in {images_path.name} "
                         "(expected one label per image)")
    return _dataset(images[:, None], _check_labels(labels, 10, str(labels_path)), 10, image_size)


def load_mnist(root: str | Path, train: bool = True, image_size: int | None = None) -> TensorDataset:
    """MNIST from `root` (or root/raw): {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; 1x28x28."""
    return _load_idx_pair(root, train, image_size, "MNIST")


def load_fashion_mnist(root: str | Path, train: bool = True, image_size: int | None = None) -> TensorDataset:
    """Fashion-MNIST, same file names and format as MNIST."""
    return _load_idx_pair(root, train, image_size, "Fashion-MNIST")


# ------------------------------------------------------------------------------------------- CIFAR

_PICKLE_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("__builtin__", "object"), ("builtins", "object"),
}


class BadBatchError(pickle.UnpicklingError, ValueError):
    """A CIFAR batch that cannot be unpickled (corrupt, truncated, not a pickle, or refused): a ValueError
    naming the file, and an UnpicklingError."""


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists and numpy arrays only: a CIFAR batch cannot run code on load."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data batch")
        return super().find_class(module, name)


def _read_batch(path: Path, keys: tuple[str, ...]) -> dict:
    """A CIFAR batch: a dict with (at least) `keys`, str keys. BadBatchError naming the file for anything
    unpickling raises (pickle can raise nearly any exception on bad input), ValueError for a missing key."""
    raw = _read_bytes(path)
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except MemoryError:
        raise BadBatchError(f"{path}: not a CIFAR batch (unpickling it runs out of memory)") from None
    except Exception as e:          # noqa: BLE001 - UnpicklingError, EOFError, ValueError, TypeError, ...
        raise BadBatchError(f"{path}: not a readable CIFAR batch (a python pickle; {type(e).__name__}: "
                            f"{_one_line(e)})") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict with {', '.join(map(repr, keys))}, got "
                         f"{type(batch).__name__}")
    batch = {(k.decode(errors="replace") if isinstance(k, bytes) else k): v for k, v in batch.items()}
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(f"{path}: no {missing[0]!r} entry (expected {', '.join(map(repr, keys))}; keys: "
                         f"{_one_line(sorted(map(str, batch)), 120)})")
    return batch


def _cifar_images(data, path: Path) -> np.ndarray:
    """'data' as uint8 (N, 3, 32, 32): rows of 3072 whole numbers in 0..255."""
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError):             # ragged nested lists
        arr = np.asarray(None)
    if arr.dtype.kind not in "iu" or arr.ndim != 2 or arr.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' is {arr.dtype} with shape {arr.shape}, expected uint8 (N, 3072)")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"{path}: 'data' holds values outside 0..255")
    return arr.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32)


def _cifar_labels(batch: dict, key: str, n: int, num_classes: int, path: Path) -> np.ndarray:
    try:
        labels = np.asarray(batch[key])
    except (ValueError, TypeError):
        labels = np.asarray(None)
    labels = _check_labels(labels, num_classes, f"{path}: {key!r}")
    if len(labels) != n:
        raise ValueError(f"{path}: {len(labels)} {key!r} for {n} images (expected one label per image)")
    return labels


def load_cifar10(root: str | Path, train: bool = True, image_size: int | None = None) -> TensorDataset:
    """CIFAR-10 from root (or root/cifar-10-batches-py): data_batch_1..5 or test_batch; 3x32x32."""
    root = Path(root)
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = _find(root, name, ("cifar-10-batches-py",), "CIFAR-10")
        batch = _read_batch(path, ("data", "labels"))
        xs.append(_cifar_images(batch["data"], path))
        ys.append(_cifar_labels(batch, "labels", len(xs[-1]), 10, path))
    return _dataset(np.concatenate(xs), np.concatenate(ys), 10, image_size)


def load_cifar100(root: str | Path, train: bool = True, image_size: int | None = None,
                  coarse: bool = False) -> TensorDataset:
    """CIFAR-100 from root (or root/cifar-100-python): `train` or `test`; fine (100) or coarse (20) labels."""
    path = _find(Path(root), "train" if train else "test", ("cifar-100-python",), "CIFAR-100")
    key = "coarse_labels" if coarse else "fine_labels"
    batch = _read_batch(path, ("data", key))
    images, num_classes = _cifar_images(batch["data"], path), 20 if coarse else 100
    return _dataset(images, _cifar_labels(batch, key, len(images), num_classes, path), num_classes, image_size)


# ------------------------------------------------------------------------------------------- GTSRB

GTSRB_CLASSES = 43
_IMAGE_SUFFIXES = (".ppm", ".pgm", ".png", ".jpg", ".jpeg", ".bmp")


def read_pnm(path: str | Path) -> np.ndarray:
    """Read a binary (P5/P6) or ASCII (P2/P3) PGM/PPM image as uint8 (C, H, W) (Netpbm format).

    Raises ValueError naming the file when it is not a supported PNM image.
    """
    path = Path(path)
    raw = _read_bytes(path)
    fields, pos = [], 2
    if raw[:2] not in (b"P2", b"P3", b"P5", b"P6"):
        raise ValueError(f"{path}: not a P2/P3/P5/P6 Netpbm image (starts with {raw[:2]!r})")
    while len(fields) < 3:  # width, height, maxval; '#' starts a comment up to end of line
        while pos < len(raw) and raw[pos:pos + 1].isspace():
            pos += 1
        if raw[pos:pos + 1] == b"#":
            pos = raw.find(b"\n", pos) + 1 or len(raw)
            continue
        end = pos
        while end < len(raw) and raw[end:end + 1].isdigit():
            end += 1
        if end == pos:
            raise ValueError(f"{path}: malformed Netpbm header")
        fields.append(int(raw[pos:end]))
        pos = end
    width, height, maxval = fields
    channels = 3 if raw[:2] in (b"P3", b"P6") else 1
    count = width * height * channels
    if width < 1 or height < 1:
        raise ValueError(f"{path}: image of {width} x {height} pixels, expected at least 1 x 1")
    if not 0 < maxval < 65536:
        raise ValueError(f"{path}: maxval {maxval} outside 1..65535")
    if raw[:2] in (b"P5", b"P6"):
        dtype = np.dtype(np.uint8) if maxval < 256 else np.dtype(">u2")
        if len(raw) - (pos + 1) < count * dtype.itemsize:
            raise ValueError(f"{path}: truncated: {len(raw) - pos - 1} bytes of pixels, expected "
                             f"{count * dtype.itemsize} for {width} x {height}")
        data = np.frombuffer(raw, dtype=dtype, count=count, offset=pos + 1)  # one whitespace after maxval
    else:
        samples = raw[pos:].split()[:count]
        if len(samples) != count or not all(v.isdigit() for v in samples):
            raise ValueError(f"{path}: expected {count} whole-number samples for {width} x {height}, got "
                             f"{len(samples)}" + ("" if all(v.isdigit() for v in samples) else " with non-numbers"))
        data = np.array(samples, dtype=np.int64)
    if data.size and data.max() > maxval:
        raise ValueError(f"{path}: a sample of {int(data.max())} above maxval {maxval}")
    img = data.reshape(height, width, channels)
    if maxval != 255 or img.dtype != np.uint8:
        img = np.rint(img.astype(np.float64) * (255.0 / maxval)).astype(np.uint8)
    return np.array(img.transpose(2, 0, 1), dtype=np.uint8, order="C")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 RGB (3, H, W): Netpbm natively, other formats through Pillow."""
    path = Path(path)
    if path.suffix.lower() in (".ppm", ".pgm", ".pnm"):
        img = read_pnm(path)
    else:
        try:
            from PIL import Image
        except ImportError as exc:  # pragma: no cover - Pillow ships with matplotlib
            raise ImportError(f"reading {path.suffix} images needs Pillow (pip install pillow)") from exc
        try:
            with Image.open(path) as im:
                img = np.array(im.convert("RGB")).transpose(2, 0, 1)
        except FileNotFoundError:
            raise
        except Exception as e:      # noqa: BLE001 - Pillow: UnidentifiedImageError, truncated data, bombs, ...
            raise ValueError(f"{path}: not a readable {path.suffix} image ({type(e).__name__}: "
                             f"{_one_line(e)})") from None
    return np.repeat(img, 3, axis=0) if img.shape[0] == 1 else img


def _stack(paths: list[Path], labels: list[int], image_size: int, num_classes: int) -> TensorDataset:
    xs = [_resize(torch.tensor(read_image(p), dtype=torch.float32).div_(255.0)[None], image_size) for p in paths]
    x = torch.cat(xs) if xs else torch.zeros((0, 3, image_size, image_size))
    return TensorDataset(x.contiguous(), torch.tensor(labels, dtype=torch.int64), num_classes)


def _gt_rows(csv_path: Path) -> list[tuple[str, int]]:
    """(file name, class id) of each row of a GTSRB ground-truth CSV (';'-separated); ValueError naming it."""
    try:
        with csv_path.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter=";"))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ValueError(f"{csv_path}: not a readable CSV file ({type(e).__name__}: {_one_line(e)})") from None
    if rows and ("Filename" not in rows[0] or "ClassId" not in rows[0]):
        raise ValueError(f"{csv_path}: expected columns Filename and ClassId, got {_one_line(list(rows[0]), 120)}")
    out = []
    for line, r in enumerate(rows, start=2):
        name, label = r["Filename"], (r["ClassId"] or "").strip()
        if not name or not label.lstrip("-").isdigit():
            raise ValueError(f"{csv_path}: line {line}: expected a Filename and an integer ClassId, got "
                             f"{name!r} and {r['ClassId']!r}")
        out.append((name, int(label)))
    return out


def load_image_folder(root: str | Path, image_size: int, num_classes: int | None = None) -> TensorDataset:
    """One sub-folder per class (`root/<class>/*.ppm|png|jpg`); integer folder names are the labels,
    otherwise sorted folder names are numbered 0.. . Raises FileNotFoundError when there is none."""
    root = Path(root)
    dirs = sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    if not dirs:
        raise FileNotFoundError(f"image folder: no class sub-folders ({root}/<class>/*.ppm) found in {root}")
    numeric = all(d.name.isdigit() for d in dirs)
    if numeric:
        dirs.sort(key=lambda d: int(d.name))
    label_of = {d: (int(d.name) if numeric else i) for i, d in enumerate(dirs)}
    paths, labels = [], []
    for d in dirs:
        for p in sorted(d.iterdir()):
            if p.suffix.lower() in _IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(label_of[d])
    if num_classes is None:
        num_classes = max(label_of.values()) + 1
    _check_labels(np.asarray(labels, dtype=np.int64), num_classes, f"{root}: class folders")
    return _stack(paths, labels, image_size, num_classes)


def load_gtsrb(root: str | Path, train: bool = True, image_size: int = 32) -> TensorDataset:
    """GTSRB (Stallkamp et al., 2012), each image resized to image_size (sizes vary from 15 to 250 px).

    train: root[/GTSRB]/Final_Training/Images/000NN/*.ppm, labelled by GT-000NN.csv when present, else by
    the folder name. test: root[/GTSRB]/Final_Test/Images/*.ppm with GT-final_test.csv (in Images or root).
    Without those, a class-folder layout root/<class>/*.ppm (train) or root/Test/<class>/ (test) is used.
    """
    root = Path(root)
    split = "Final_Training" if train else "Final_Test"
    images_dir = next((d for d in (root / "GTSRB" / split / "Images", root / split / "Images") if d.is_dir()), None)
    if images_dir is None:
        folder = root if train else root / "Test"
        if folder.is_dir() and any(d.is_dir() and d.name.isdigit() for d in folder.iterdir()):
            return load_image_folder(folder, image_size, GTSRB_CLASSES)
        raise FileNotFoundError(
            f"GTSRB {'training' if train else 'test'} images: expected directory "
            f"{root / 'GTSRB' / split / 'Images'} (or {root / split / 'Images'}) or class folders "
            f"{folder}/<class id>/*.ppm")
    paths, labels = [], []
    if train:
        for class_dir in sorted(d for d in images_dir.iterdir() if d.is_dir()):
            gt = class_dir / f"GT-{class_dir.name}.csv"
            if gt.is_file():
                rows = _gt_rows(gt)
                _check_labels(np.array([r[1] for r in rows], dtype=np.int64), GTSRB_CLASSES, f"{gt}: ClassId")
            elif class_dir.name.isdigit():
                rows = [(p.name, int(class_dir.name)) for p in sorted(class_dir.iterdir())
                        if p.suffix.lower() in _IMAGE_SUFFIXES]
                _check_labels(np.array([int(class_dir.name)]), GTSRB_CLASSES, f"{class_dir}: folder name")
            else:
                raise ValueError(f"{class_dir}: expected a class folder named by its class id (00000..00042) "
                                 f"or holding GT-{class_dir.name}.csv")
            for name, label in rows:
                paths.append(class_dir / name)
                labels.append(label)
    else:
        gt = _find_in([images_dir, images_dir.parent.parent, root], "GT-final_test.csv", "GTSRB test labels")
        for name, label in _gt_rows(gt):
            paths.append(images_dir / name)
            labels.append(label)
        _check_labels(np.array(labels, dtype=np.int64), GTSRB_CLASSES, f"{gt}: ClassId")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"GTSRB: image {missing[0]} listed but not found ({len(missing)} missing)")
    return _stack(paths, labels, image_size, GTSRB_CLASSES)


# ------------------------------------------------------------------------------------------ registry

LOADERS = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "gtsrb": load_gtsrb,
}


def load_dataset(name: str, root: str | Path, train: bool = True, image_size: int | None = None) -> TensorDataset:
    """Load data set `name` from directory `root`; raises KeyError naming the known data sets."""
    if name not in LOADERS:
        raise KeyError(f"unknown data set {name!r}; known: {sorted(LOADERS)}")
    if name == "gtsrb":
        return load_gtsrb(root, train, 32 if image_size is None else image_size)
    return LOADERS[name](root, train, image_size)
