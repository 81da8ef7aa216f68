"""Corrupt, truncated, malicious or odd data-set files: a ValueError (or FileNotFoundError) naming the file, on
one line, which `cosim run` prints as one line with exit code 2."""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from cosim.cli import main
from learning.datasets import load_cifar10, load_cifar100, load_gtsrb, load_image_folder, load_mnist, read_idx

from test_learning_datasets import _cifar_batch, _images, write_idx, write_ppm


def one_line_naming(err: pytest.ExceptionInfo, name: str, *words: str) -> str:
    msg = str(err.value)
    assert "\n" not in msg and name in msg and all(w in msg for w in words), msg
    return msg


# ---- MNIST (idx) ----------------------------------------------------------------------------------

def _mnist(folder, labels=(0, 1, 2), gz=True):
    suffix = ".gz" if gz else ""
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", _images(len(labels), 4, 4), gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.array(labels), gz)
    return folder / f"t10k-images-idx3-ubyte{suffix}", folder / f"t10k-labels-idx1-ubyte{suffix}"


def _idx(dtype_code: int, array: np.ndarray) -> bytes:
    return bytes([0, 0, dtype_code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + array.tobytes()


GZ_BREAKS = {
    "truncated": lambda b: b[: len(b) // 2],
    "bad-crc": lambda b: b[:-8] + bytes(4) + b[-4:],
    "not-gzip": lambda b: b"plain bytes, not gzip",
    "garbled": lambda b: b[:10] + bytes(len(b) - 18) + b[-8:],
    "empty": lambda b: b"",
}


@pytest.mark.parametrize("how", GZ_BREAKS)
def test_broken_gzip_idx_names_the_file(tmp_path, how):
    images, _ = _mnist(tmp_path)
    images.write_bytes(GZ_BREAKS[how](images.read_bytes()))
    with pytest.raises(ValueError) as err:
        load_mnist(tmp_path, train=False)
    one_line_naming(err, images.name, "gzip")


@pytest.mark.parametrize("content, words", [
    (bytes([0, 0, 8, 3, 0, 0]), ["header", "cut off"]),
    (b"", ["not an idx file"]),
    (bytes([0, 0, 8, 1, 0, 0, 0, 9]) + bytes(3), ["header says (9,)", "holds 3 bytes"]),
    (bytes([0, 0, 8, 4]) + b"\xff" * 16, ["header says"]),        # 2**32 - 1 in every dimension: no overflow
], ids=["header-cut", "empty", "short", "huge-dims"])
def test_bad_idx_header_names_the_file(tmp_path, content, words):
    (tmp_path / "x-idx").write_bytes(content)
    with pytest.raises(ValueError) as err:
        read_idx(tmp_path / "x-idx")
    one_line_naming(err, "x-idx", *words)


@pytest.mark.parametrize("labels_raw, words", [
    (_idx(0x08, np.array([0, 12, 1], dtype=np.uint8)), ["label 12 outside 0..9"]),
    (_idx(0x09, np.array([0, -1, 1], dtype=np.int8)), ["label -1 outside 0..9"]),
    (_idx(0x0D, np.array([0, 1, 2], dtype=">f4")), ["integer class labels"]),
    (_idx(0x08, np.array([0, 1], dtype=np.uint8)), ["one label per image"]),
    (_idx(0x08, np.zeros((3, 1), dtype=np.uint8)), ["one label per image"]),
], ids=["label-too-big", "label-negative", "float-labels", "too-few", "two-dimensional"])
def test_bad_mnist_labels_name_the_labels_file(tmp_path, labels_raw, words):
    _, labels = _mnist(tmp_path, gz=False)
    labels.write_bytes(labels_raw)
    with pytest.raises(ValueError) as err:
        load_mnist(tmp_path, train=False)
    one_line_naming(err, labels.name, *words)


def test_mnist_images_of_another_type_name_the_images_file(tmp_path):
    images, _ = _mnist(tmp_path, gz=False)
    images.write_bytes(_idx(0x0D, np.zeros((3, 4, 4), dtype=">f4")))
    with pytest.raises(ValueError) as err:
        load_mnist(tmp_path, train=False)
    one_line_naming(err, images.name, "unsigned-byte images")


# ---- CIFAR (pickles) ------------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _good_batch() -> bytes:
    return pickle.dumps(_cifar_batch(3, 0, labels=[1, 2, 3]), protocol=2)


PICKLES = [
    ("truncated", _good_batch()[:100], ["not a readable CIFAR batch"]),
    ("truncated-late", _good_batch()[:-3], ["not a readable CIFAR batch"]),
    ("empty", b"", ["not a readable CIFAR batch", "EOFError"]),
    ("garbage", b"\x89PNG\r\n\x1a\nnot a pickle at all", ["not a readable CIFAR batch"]),
    ("text", b"data,labels\n1,2\n", ["not a readable CIFAR batch"]),
    ("code", pickle.dumps({b"data": _Evil(), b"labels": [0]}), ["refusing", "print"]),
    ("os-system", b"cos\nsystem\n(S'echo pwned'\ntR.", ["refusing", "os.system"]),
    ("codecs-bad-args", b"c_codecs\nencode\n(I1\nI2\ntR.", ["not a readable CIFAR batch"]),
    ("not-a-dict", pickle.dumps([1, 2, 3]), ["expected a pickled dict", "list"]),
    ("no-labels", pickle.dumps({b"data": _images(1, 1, 3072)[:, 0]}), ["no 'labels' entry"]),
    ("no-data", pickle.dumps({b"labels": [0]}), ["no 'data' entry"]),
    ("data-strings", pickle.dumps({b"data": ["a", "b"], b"labels": [0, 1]}), ["'data'", "(N, 3072)"]),
    ("data-ragged", pickle.dumps({b"data": [[1, 2], [3]], b"labels": [0, 1]}), ["'data'", "(N, 3072)"]),
    ("data-shape", pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), ["(2, 100)"]),
    ("data-range", pickle.dumps({b"data": np.full((1, 3072), 300), b"labels": [0]}), ["outside 0..255"]),
    ("data-float", pickle.dumps({b"data": np.zeros((1, 3072)), b"labels": [0]}), ["float64"]),
    ("labels-strings", pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["cat"]}),
     ["integer class labels"]),
    ("labels-range", pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]}),
     ["label 10 outside 0..9"]),
    ("labels-negative", pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [-2]}), ["label -2"]),
    ("labels-count", pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
     ["one label per image"]),
    ("labels-none", pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": None}),
     ["integer class labels"]),
]


@pytest.mark.parametrize("content, words", [p[1:] for p in PICKLES], ids=[p[0] for p in PICKLES])
def test_bad_cifar10_batch_names_the_file(tmp_path, content, words):
    (tmp_path / "test_batch").write_bytes(content)
    with pytest.raises(ValueError) as err:
        load_cifar10(tmp_path, train=False)
    one_line_naming(err, "test_batch", *words)


def test_refused_cifar_pickle_is_still_an_unpickling_error(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    with pytest.raises(pickle.UnpicklingError):
        load_cifar10(tmp_path, train=False)


def test_cifar100_label_out_of_range_names_the_file(tmp_path):
    batch = _cifar_batch(2, 0, fine_labels=[99, 100], coarse_labels=[19, 20])
    (tmp_path / "test").write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError) as err:
        load_cifar100(tmp_path, train=False)
    one_line_naming(err, "test", "'fine_labels'", "label 100 outside 0..99")
    with pytest.raises(ValueError) as err:
        load_cifar100(tmp_path, train=False, coarse=True)
    one_line_naming(err, "test", "'coarse_labels'", "label 20 outside 0..19")


# ---- GTSRB and image folders ----------------------------------------------------------------------

def _folder_with(tmp_path, name: str, content: bytes, cls: str = "3"):
    (tmp_path / cls).mkdir()
    (tmp_path / cls / name).write_bytes(content)
    return tmp_path / cls / name


def _ppm_bytes(h=4, w=5) -> bytes:
    return f"P6\n{w} {h}\n255\n".encode() + _images(1, h, w, 3)[0].tobytes()


IMAGES = [
    ("ppm-truncated", "a.ppm", _ppm_bytes()[:-7], ["truncated"]),
    ("ppm-gif", "a.ppm", b"GIF89a....", ["not a P2/P3/P5/P6"]),
    ("ppm-empty", "a.ppm", b"", ["not a P2/P3/P5/P6"]),
    ("ppm-header-cut", "a.ppm", b"P6\n5 ", ["malformed Netpbm header"]),
    ("ppm-zero-size", "a.ppm", b"P6\n0 0\n255\n", ["0 x 0 pixels"]),
    ("ppm-ascii-text", "a.ppm", b"P3\n1 1\n255\n1 two 3\n", ["non-numbers"]),
    ("ppm-ascii-short", "a.ppm", b"P3\n2 1\n255\n1 2 3\n", ["expected 6", "got 3"]),
    ("ppm-above-maxval", "a.ppm", b"P3\n1 1\n15\n1 2 300\n", ["300 above maxval 15"]),
    ("png-garbage", "a.png", b"\x89PNG\r\n\x1a\n garbage", ["not a readable .png image"]),
    ("png-text", "a.jpg", b"hello", ["not a readable .jpg image"]),
]


@pytest.mark.parametrize("name, content, words", [i[1:] for i in IMAGES], ids=[i[0] for i in IMAGES])
def test_bad_image_names_the_file(tmp_path, name, content, words):
    path = _folder_with(tmp_path, name, content)
    with pytest.raises(ValueError) as err:
        load_gtsrb(tmp_path, image_size=8)
    one_line_naming(err, str(path), *words)


def test_truncated_png_names_the_file(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = tmp_path / "7" / "a.png"
    path.parent.mkdir()
    pil.fromarray(_images(1, 30, 30, 3)[0]).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError) as err:
        load_gtsrb(tmp_path, image_size=8)
    one_line_naming(err, str(path), "not a readable .png image")


def _gtsrb_train(tmp_path, csv_text: str | bytes):
    d = tmp_path / "GTSRB" / "Final_Training" / "Images" / "00001"
    d.mkdir(parents=True)
    write_ppm(d / "00000_00000.ppm", _images(1, 6, 6, 3)[0])
    gt = d / "GT-00001.csv"
    gt.write_bytes(csv_text if isinstance(csv_text, bytes) else csv_text.encode())
    return gt


@pytest.mark.parametrize("csv_text, words", [
    ("Filename;ClassId\n00000_00000.ppm;one\n", ["line 2", "integer ClassId", "'one'"]),
    ("Filename;ClassId\n00000_00000.ppm\n", ["line 2", "integer ClassId", "None"]),
    ("Filename;ClassId\n00000_00000.ppm;43\n", ["label 43 outside 0..42"]),
    ("Filename;ClassId\n00000_00000.ppm;-1\n", ["label -1 outside 0..42"]),
    (b"Filename;ClassId\n\xff\xfe\xfa;1\n", ["not a readable CSV file"]),
    ("Name;Label\nx.ppm;1\n", ["expected columns Filename and ClassId"]),
], ids=["class-text", "class-missing", "class-too-big", "class-negative", "not-utf8", "wrong-columns"])
def test_bad_gtsrb_ground_truth_names_the_csv(tmp_path, csv_text, words):
    gt = _gtsrb_train(tmp_path, csv_text)
    with pytest.raises(ValueError) as err:
        load_gtsrb(tmp_path, image_size=8)
    one_line_naming(err, str(gt), *words)


def test_gtsrb_class_folders_out_of_range_or_not_numbered(tmp_path):
    write_ppm(_folder_with(tmp_path, "a.ppm", b"", cls="50"), _images(1, 4, 4, 3)[0])
    with pytest.raises(ValueError) as err:
        load_gtsrb(tmp_path, image_size=8)
    one_line_naming(err, str(tmp_path), "label 50 outside 0..42")
    other = tmp_path / "x"
    d = other / "GTSRB" / "Final_Training" / "Images" / "stop-signs"
    d.mkdir(parents=True)
    write_ppm(d / "a.ppm", _images(1, 4, 4, 3)[0])
    with pytest.raises(ValueError) as err:
        load_gtsrb(other, image_size=8)
    one_line_naming(err, str(d), "named by its class id")


def test_image_folder_with_fewer_classes_than_its_labels(tmp_path):
    write_ppm(_folder_with(tmp_path, "a.ppm", b"", cls="5"), _images(1, 4, 4, 3)[0])
    with pytest.raises(ValueError) as err:
        load_image_folder(tmp_path, 8, num_classes=3)
    one_line_naming(err, str(tmp_path), "label 5 outside 0..2")


# ---- end to end: one line from `cosim run`, exit code 2 -------------------------------------------

def _run_cli(tmp_path, scenario_file, capsys, dataset: str) -> str:
    path = scenario_file({"name": f"bad-{dataset}", "learning": {"dataset": dataset, "data_dir": "data"}})
    code = main(["run", str(path), "--quiet", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert err.startswith(str(path)) and "learning.data_dir = 'data'" in err, err
    assert not (tmp_path / "out").exists()
    return err


def test_cli_truncated_mnist_gzip_is_one_line(tmp_path, scenario_file, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for prefix in ("train", "t10k"):
        write_idx(data / f"{prefix}-images-idx3-ubyte.gz", _images(4, 28, 28), gz=True)
        write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3]), gz=True)
    images = data / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:40])
    err = _run_cli(tmp_path, scenario_file, capsys, "mnist")
    assert "train-images-idx3-ubyte.gz" in err and "gzip" in err


def test_cli_mnist_label_out_of_range_is_one_line(tmp_path, scenario_file, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for prefix in ("train", "t10k"):
        write_idx(data / f"{prefix}-images-idx3-ubyte", _images(4, 28, 28))
        write_idx(data / f"{prefix}-labels-idx1-ubyte", np.array([0, 1, 2, 10]))
    err = _run_cli(tmp_path, scenario_file, capsys, "mnist")
    assert "train-labels-idx1-ubyte" in err and "label 10 outside 0..9" in err


@pytest.mark.parametrize("content", [_good_batch()[:50], pickle.dumps({b"data": _Evil(), b"labels": [0]}),
                                     pickle.dumps({b"labels": [0]})], ids=["truncated", "malicious", "no-data"])
def test_cli_bad_cifar_batch_is_one_line(tmp_path, scenario_file, capsys, content):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(1, 6):
        (data / f"data_batch_{i}").write_bytes(_good_batch())
    (data / "test_batch").write_bytes(_good_batch())
    (data / "data_batch_3").write_bytes(content)
    err = _run_cli(tmp_path, scenario_file, capsys, "cifar10")
    assert "data_batch_3" in err


def test_cli_bad_gtsrb_image_is_one_line(tmp_path, scenario_file, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _folder_with(data, "a.png", b"\x89PNG\r\n\x1a\n garbage", cls="1")
    err = _run_cli(tmp_path, scenario_file, capsys, "gtsrb")
    assert "a.png" in err and "not a readable .png image" in err
