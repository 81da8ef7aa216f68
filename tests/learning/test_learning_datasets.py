"""Data set loaders on tiny fake files written in the real formats."""
import gzip
import pickle

import numpy as np
import pytest
import torch

from learning.datasets import (load_cifar10, load_cifar100, load_dataset, load_fashion_mnist, load_gtsrb,
                               load_mnist, read_idx, read_pnm)


def write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_ppm(path, rgb_hwc, ascii_=False):
    h, w, _ = rgb_hwc.shape
    if ascii_:
        body = " ".join(str(v) for v in rgb_hwc.reshape(-1))
        path.write_text(f"P3\n# fake\n{w} {h}\n255\n{body}\n")
    else:
        path.write_bytes(f"P6\n# GTSRB-like\n{w} {h}\n255\n".encode() + rgb_hwc.astype(np.uint8).tobytes())


def _images(n, h, w, c=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if c is None else (n, h, w, c)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_loaders(tmp_path, loader, gz):
    imgs = _images(5, 28, 28)
    suffix = ".gz" if gz else ""
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", imgs, gz)
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", np.array([0, 1, 2, 9, 4]), gz)
    data = loader(tmp_path, train=False)
    assert data.x.shape == (5, 1, 28, 28) and data.x.dtype == torch.float32
    assert torch.equal(data.x[2, 0], torch.from_numpy(imgs[2]).float() / 255)
    assert data.y.tolist() == [0, 1, 2, 9, 4] and data.y.dtype == torch.int64 and data.num_classes == 10
    small = loader(tmp_path, train=False, image_size=14)
    assert small.x.shape == (5, 1, 14, 14) and 0 <= small.x.min() and small.x.max() <= 1


def test_idx_in_raw_subfolder_and_bad_header(tmp_path):
    (tmp_path / "raw").mkdir()
    write_idx(tmp_path / "raw" / "train-images-idx3-ubyte", _images(2, 4, 4))
    write_idx(tmp_path / "raw" / "train-labels-idx1-ubyte", np.array([3, 4]))
    assert load_mnist(tmp_path).x.shape == (2, 1, 4, 4)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="bad"):
        read_idx(bad)


def test_mnist_missing_file_names_it(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", _images(2, 4, 4))
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(tmp_path)
    assert "train-labels-idx1-ubyte" in str(err.value) and str(tmp_path) in str(err.value)


def _cifar_batch(n, seed, **labels):
    batch = {b"batch_label": b"fake", b"data": _images(n, 1, 3072, seed=seed)[:, 0]}
    batch.update({k.encode(): v for k, v in labels.items()})
    return batch


def test_cifar10(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_cifar_batch(2, i, labels=[i, 9 - i]) for i in range(5)]
    for i, b in enumerate(batches, start=1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(b, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(_cifar_batch(3, 7, labels=[1, 2, 3])))
    train = load_cifar10(tmp_path)
    assert train.x.shape == (10, 3, 32, 32) and train.num_classes == 10
    assert train.y.tolist() == [0, 9, 1, 8, 2, 7, 3, 6, 4, 5]
    pixel = batches[0][b"data"][1].reshape(3, 32, 32)[2, 5, 7]  # blue channel, row 5, column 7
    assert train.x[1, 2, 5, 7].item() == pytest.approx(pixel / 255)
    test = load_dataset("cifar10", tmp_path, train=False, image_size=16)
    assert test.x.shape == (3, 3, 16, 16) and test.y.tolist() == [1, 2, 3]


def test_cifar10_missing_batch_names_it(tmp_path):
    for i in (1, 2):
        (tmp_path / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(1, i, labels=[0])))
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_pickle_cannot_run_code(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}))
    with pytest.raises(pickle.UnpicklingError, match="print"):
        load_cifar10(tmp_path, train=False)


def test_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    batch = _cifar_batch(3, 0, fine_labels=[99, 0, 50], coarse_labels=[19, 0, 10])
    (folder / "test").write_bytes(pickle.dumps(batch))
    fine = load_cifar100(tmp_path, train=False)
    assert fine.y.tolist() == [99, 0, 50] and fine.num_classes == 100
    coarse = load_cifar100(tmp_path, train=False, coarse=True)
    assert coarse.y.tolist() == [19, 0, 10] and coarse.num_classes == 20
    with pytest.raises(FileNotFoundError, match="'train'"):
        load_cifar100(tmp_path)


def test_read_pnm_binary_and_ascii(tmp_path):
    img = _images(1, 3, 5, 3)[0]
    write_ppm(tmp_path / "a.ppm", img)
    write_ppm(tmp_path / "b.ppm", img, ascii_=True)
    for name in ("a.ppm", "b.ppm"):
        out = read_pnm(tmp_path / name)
        assert out.shape == (3, 3, 5) and np.array_equal(out, img.transpose(2, 0, 1))
    (tmp_path / "c.ppm").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="c.ppm"):
        read_pnm(tmp_path / "c.ppm")


def test_gtsrb_final_training_with_gt_csv(tmp_path):
    images = tmp_path / "GTSRB" / "Final_Training" / "Images"
    for cls, sizes in ((0, [(30, 31), (40, 35)]), (42, [(25, 29)])):
        d = images / f"{cls:05d}"
        d.mkdir(parents=True)
        rows = ["Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"]
        for j, (h, w) in enumerate(sizes):
            name = f"00000_{j:05d}.ppm"
            write_ppm(d / name, _images(1, h, w, 3, seed=j)[0])
            rows.append(f"{name};{w};{h};5;5;{w - 5};{h - 5};{cls}")
        (d / f"GT-{cls:05d}.csv").write_text("\n".join(rows) + "\n")
    data = load_gtsrb(tmp_path, image_size=16)
    assert data.x.shape == (3, 3, 16, 16) and data.num_classes == 43
    assert data.y.tolist() == [0, 0, 42]
    assert 0 <= data.x.min() and data.x.max() <= 1


def test_gtsrb_final_test_and_class_folders(tmp_path):
    images = tmp_path / "GTSRB" / "Final_Test" / "Images"
    images.mkdir(parents=True)
    write_ppm(images / "00000.ppm", _images(1, 20, 20, 3)[0])
    write_ppm(images / "00001.ppm", _images(1, 32, 32, 3)[0])
    (tmp_path / "GT-final_test.csv").write_text(
        "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n00000.ppm;20;20;1;1;19;19;16\n"
        "00001.ppm;32;32;1;1;31;31;1\n")
    test = load_gtsrb(tmp_path, train=False, image_size=32)
    assert test.y.tolist() == [16, 1]
    assert torch.equal(test.x[1], torch.from_numpy(_images(1, 32, 32, 3)[0].transpose(2, 0, 1)).float() / 255)

    folders = tmp_path / "folders"
    for cls in (3, 12):
        (folders / str(cls)).mkdir(parents=True)
        write_ppm(folders / str(cls) / "x.ppm", _images(1, 10, 12, 3, seed=cls)[0], ascii_=True)
    data = load_gtsrb(folders, image_size=8)
    assert data.y.tolist() == [3, 12] and data.x.shape == (2, 3, 8, 8)


def test_gtsrb_png_through_pillow(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    (tmp_path / "7").mkdir()
    pil.fromarray(_images(1, 9, 9, 3)[0]).save(tmp_path / "7" / "a.png")
    data = load_gtsrb(tmp_path, image_size=9)
    assert data.y.tolist() == [7]
    assert torch.equal(data.x[0], torch.from_numpy(_images(1, 9, 9, 3)[0].transpose(2, 0, 1)).float() / 255)


def test_gtsrb_missing_names_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_gtsrb(tmp_path)
    assert str(tmp_path / "GTSRB" / "Final_Training" / "Images") in str(err.value)
    images = tmp_path / "Final_Test" / "Images"
    images.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="GT-final_test.csv"):
        load_gtsrb(tmp_path, train=False)
    with pytest.raises(KeyError, match="gtsrb"):
        load_dataset("svhn", tmp_path)
