"""Data: torchvision's loading code on files written here in the data sets' own formats,
and the paired-folder loader (PNG, TIFF, .npy; crops; per-band normalisation; bad files)."""

import numpy as np
import pytest
import torch
from datafiles import write_cifar10, write_folder, write_image, write_mnist

from data import DataError, load_dataset


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_formats_load_through_torchvision_exactly(tmp_path, name):
    arrays = write_mnist(tmp_path, name)
    data = load_dataset(name, tmp_path)
    assert data.image_shape == (1, 28, 28) and data.levels == 256
    assert data.train_values.dtype == torch.uint8  # 256 levels stay one byte per pixel
    assert torch.equal(data.train_values[:, 0], torch.from_numpy(arrays["train"]))
    assert torch.equal(data.test_values[:, 0], torch.from_numpy(arrays["test"]))
    assert torch.equal(data.test_labels, torch.from_numpy(arrays["test_labels"]).long())
    x = data.test_images()
    v = data.test_values.float()
    assert bool(((x * 256 - v) >= 0).all() and ((x * 256 - v) < 1).all())  # x = (v + ε)/256, ε ∈ [0, 1)


def test_cifar10_pickled_batches_load_through_torchvision_in_channel_first_order(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    arrays, md5 = write_cifar10(tmp_path)
    # torchvision checks every file against the real data set's md5: declare the test files' own
    monkeypatch.setattr(CIFAR10, "train_list", [[f, md5[f]] for f, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    data = load_dataset("cifar10", tmp_path)
    assert data.image_shape == (3, 32, 32) and len(data.train_values) == 20
    expected = np.concatenate([arrays[f"data_batch_{i}"] for i in range(1, 6)])
    assert torch.equal(data.train_values, torch.from_numpy(expected))
    assert torch.equal(data.test_values, torch.from_numpy(arrays["test_batch"]))


def test_cifar10_files_that_fail_torchvisions_checksum_are_a_one_line_error(tmp_path):
    write_cifar10(tmp_path)
    with pytest.raises(DataError, match=r"could not be read \(Dataset not found or corrupted.*--download"):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_files_name_the_folder_the_files_and_the_fix(tmp_path, name):
    with pytest.raises(DataError) as error:
        load_dataset(name, tmp_path)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path) in message and "--download" in message
    assert ("train-images-idx3-ubyte" if name != "cifar10" else "data_batch_1") in message


def test_a_truncated_idx_file_is_a_one_line_error(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="could not be read"):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".npy", ".tif"])
def test_paired_folder_normalizes_x_and_y_with_one_map_per_band(tmp_path, suffix):
    bands = 1 if suffix == ".png" else 4  # a 4-band satellite-like stack as TIFF and .npy
    dtype = np.uint8 if suffix == ".png" else np.uint16
    images = write_folder(tmp_path, n=10, bands=bands, suffix=suffix, dtype=dtype)
    data = load_dataset("folder", tmp_path, scale=2)
    assert data.paired and data.image_shape == (bands, 16, 16) and len(data.test_values) == 2
    train = [np.stack([images[k, n] for n in names]) for k in ("hr", "lr")
             for names in [sorted({f"img{i}" for i in range(10)})]]
    low = np.minimum(train[0].min((0, 2, 3)), train[1].min((0, 2, 3)))  # over all 10: ⊇ the 8 training
    assert bool((data.low >= torch.from_numpy(low.astype(np.float32))).all())
    x, y = data.train_pair(torch.arange(len(data.train_values)))
    assert x.min() >= 0 and x.max() < 1 and y.min() >= 0 and y.max() < 1  # training pixels map into [0, 1)
    # one map for x and y: the same raw value gives the same normalized value (without noise)
    both = data.normalize(torch.full((1, bands, 1, 1), 200.0))
    assert torch.allclose(data.to_original_units(both[0]), torch.full((bands, 1, 1), 200.0))
    x_test, y_test = data.test_pair()
    assert y_test.shape[-2:] == (8, 8)
    raw = data.to_original_units(x_test).floor()  # integer pixels: the dequantized value floors to v
    assert torch.equal(raw, data.test_values.float())


def test_hr_only_folder_has_no_lr_images_and_float_pixels_are_not_dequantized(tmp_path):
    write_folder(tmp_path, n=5, suffix=".npy", paired=False, dtype=np.float32)
    data = load_dataset("folder", tmp_path)
    assert not data.paired and not data.integer and data.levels is None
    x, y = data.test_pair()
    assert y is None and torch.equal(x, data.normalize(data.test_values))
    assert torch.equal(data.train_batch(torch.arange(2)), data.train_batch(torch.arange(2)))  # no noise


def test_crops_of_y_are_exactly_the_crops_of_x_at_one_over_s(tmp_path):
    """With y = d(x) written to lr/, the crop of y must equal d(crop of x) pixel for pixel."""
    from data import downscale

    rng = np.random.default_rng(1)
    for kind in ("hr", "lr"):
        (tmp_path / kind).mkdir()
    for i in range(4):
        hr = rng.integers(0, 256, (2, 32, 32)).astype(np.float32)
        write_image(tmp_path / "hr" / f"{i}.npy", hr)
        write_image(tmp_path / "lr" / f"{i}.npy", downscale(torch.from_numpy(hr)[None], 4)[0].numpy())
    data = load_dataset("folder", tmp_path, scale=4, crop=12)
    assert data.image_shape == (2, 12, 12)
    torch.manual_seed(0)
    x, y = data.train_pair(torch.tensor([0, 1, 2, 0, 0, 0]))
    assert x.shape == (6, 2, 12, 12) and y.shape == (6, 2, 3, 3)
    assert torch.allclose(downscale(x, 4), y, atol=1e-6)
    assert not torch.equal(x[3], x[4]) or not torch.equal(x[4], x[5])  # crops are drawn afresh per image
    x_test, y_test = data.test_pair()
    assert torch.equal(x_test, data.test_pair()[0]) and torch.allclose(downscale(x_test, 4), y_test, atol=1e-6)


def bad_folder(tmp_path, case):
    """Writes the bad folder ``case`` and returns the text its error must contain."""
    if case == "no hr folder":
        tmp_path.mkdir(exist_ok=True)
        return "no hr/ folder"
    write_folder(tmp_path, n=4)
    if case == "one image":
        for path in list((tmp_path / "hr").iterdir())[1:]:
            path.unlink()
        return "need at least 2"
    if case == "unmatched name":
        (tmp_path / "lr" / "img3.png").rename(tmp_path / "lr" / "other.png")
        return "img3.*: has no partner in lr/"
    if case == "corrupt image":
        (tmp_path / "hr" / "img2.png").write_bytes(b"not a png")
        return "img2.png: cannot read it as an image"
    if case == "NaN pixels":
        write_image(tmp_path / "hr" / "img1.npy", np.full((1, 16, 16), np.nan, dtype=np.float32))
        (tmp_path / "hr" / "img1.png").unlink()
        return "img1.npy: has NaN or infinite pixels"
    if case == "wrong channel count":
        write_image(tmp_path / "hr" / "img2.png", np.zeros((3, 16, 16), np.uint8))
        return "img2.png: 3 bands of 16×16, but every HR image must be 1 band of 16×16"
    if case == "LR not 1/s of HR":
        write_image(tmp_path / "lr" / "img1.png", np.zeros((1, 7, 7), np.uint8))
        return "img1.png: 1 band of 7×7, but every LR image (HR size / --scale 2) must be 1 band of 8×8"
    if case == "size not divisible":
        for i in range(4):
            write_image(tmp_path / "hr" / f"img{i}.png", np.zeros((1, 15, 15), np.uint8))
        return "images of 15×15 are not divisible by --scale 2"
    raise KeyError(case)


@pytest.mark.parametrize("case", ["no hr folder", "one image", "unmatched name", "corrupt image", "NaN pixels",
                                  "wrong channel count", "LR not 1/s of HR", "size not divisible"])
def test_bad_folders_are_one_line_errors_naming_the_file(tmp_path, case):
    root = tmp_path / "images"
    expected = bad_folder(root, case)
    with pytest.raises(DataError) as error:
        load_dataset("folder", root)
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_host_loader_yields_every_pair_once_per_epoch(tmp_path, workers):
    """The DataLoader path (data kept in host memory, e.g. a large set on a GPU machine) gives the
    same (index, x, y) triples as indexing the data directly."""
    from training.batches import epoch_order, host_batches

    write_folder(tmp_path, n=12, suffix=".npy", dtype=np.float32)
    data = load_dataset("folder", tmp_path)
    seen = []
    for index, x, y in host_batches(data, epoch_order(data, 3), "cpu", workers=workers):
        expected_x, expected_y = data.train_pair(index)
        assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
        seen += index.tolist()
    assert sorted(seen) == list(range(len(data.train_values)))


def test_device_names_that_mean_the_same_device_are_the_same():
    """Data moved with .to("cuda") sit on "cuda:0": the loop must not send them through the host
    DataLoader when run.py asks for "cuda"."""
    from training.batches import same_device

    assert same_device(torch.device("cpu"), torch.device("cpu"))
    assert not same_device(torch.device("cpu"), torch.device("cuda:0"))
    if torch.cuda.is_available():
        assert same_device(torch.device("cuda:0"), torch.device("cuda"))


def test_data_are_not_changed_from_outside_a_variant_is_a_new_object(digits):
    """The discrete grid and a saved normalization are given when the data are built or asked for."""
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        digits.discrete = True
    grid = digits.with_options(discrete=True)
    assert not digits.discrete and grid.discrete
    levels = grid.test_images() * digits.levels - 0.5  # bin centres (v + ½)/L
    assert torch.equal(levels, levels.round())
    saved = digits.with_options(normalization={"low": [1.0], "span": [34.0]})
    assert digits.span.tolist() == [17.0] and saved.span.tolist() == [34.0]
    assert torch.allclose(saved.to_original_units(saved.test_images()), digits.to_original_units(digits.test_images()),
                          atol=1e-5)


def test_the_digits_are_scikit_learns_without_importing_it():
    from sklearn.datasets import load_digits as sklearn_digits

    from data.digits import load_digits

    bunch = sklearn_digits()
    data = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    test, train = order[:359], order[359:]
    assert torch.equal(data.test_values, images[test]) and torch.equal(data.train_values, images[train])
    assert torch.equal(data.test_labels, torch.as_tensor(bunch.target[test.numpy()]))
