"""Datasets from the upstream file formats, the fixed validation split, and the batch recipe."""

import gzip
import json
import pickle

import numpy as np
import pytest
import torch
from conftest import N_TEST, N_TRAIN, images_and_labels, write_mnist_family

from dlpy.build import build_data
from dlpy.data.augmentations import random_crop
from dlpy.data.vision import Split
from dlpy.errors import DlpyError

VAL = 100  # conftest's FAST overrides hold out this many training images
MNIST_DIRS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
IDX_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def written_mnist(n, seed):
    """The images and labels conftest writes into the IDX files: (N, 1, 28, 28) and (N,) tensors."""
    x, y = images_and_labels(n, 28, 1, 10, seed)
    return torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y).long()


def source_indices(split):
    """Where each image of a split sits in the written training file (each image is distinct)."""
    x, _ = written_mnist(N_TRAIN, 0)
    where = {bytes(img.numpy().tobytes()): i for i, img in enumerate(x)}
    assert len(where) == N_TRAIN, "the synthetic training images should all differ"
    return [where[bytes(img.numpy().tobytes())] for img in split.x]


@pytest.mark.parametrize("dataset", sorted(MNIST_DIRS))
def test_mnist_family_loads_from_the_torchvision_layout(dataset, make_cfg):
    data = build_data(make_cfg(f"dataset={dataset}", "dataset.download=false"))
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (1, 28, 28)
        assert split.y.dtype == torch.int64 and split.y.shape == (len(split.x),)
        assert 0 <= int(split.y.min()) and int(split.y.max()) < 10
    assert (len(data.train), len(data.val), len(data.test)) == (N_TRAIN - VAL, VAL, N_TEST)
    assert len(data.classes) == 10
    # the test split is the t10k file, in order, pixel for pixel
    x, y = written_mnist(N_TEST, 1)
    assert torch.equal(data.test.x, x) and torch.equal(data.test.y, y)


def test_train_and_val_partition_the_training_file(make_cfg):
    data = build_data(make_cfg("dataset.download=false"))
    train, val = source_indices(data.train), source_indices(data.val)
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(N_TRAIN))
    # each image keeps its own label
    _, y = written_mnist(N_TRAIN, 0)
    assert torch.equal(data.train.y, y[train]) and torch.equal(data.val.y, y[val])


def test_the_split_is_fixed_by_split_seed(make_cfg):
    def val_indices(seed):
        return source_indices(
            build_data(make_cfg("dataset.download=false", f"dataset.split_seed={seed}")).val
        )

    first = val_indices(0)
    assert val_indices(0) == first
    assert set(val_indices(1)) != set(first)


def test_val_size_must_leave_training_data(make_cfg):
    with pytest.raises(DlpyError, match="dataset.val_size"):
        build_data(make_cfg("dataset.download=false", f"dataset.val_size={N_TRAIN}"))


@pytest.mark.parametrize("dataset", sorted(MNIST_DIRS))
def test_gzipped_files_of_a_system_folder_are_unpacked_into_the_data_folder(
    dataset, make_cfg, tmp_path
):
    system, root = tmp_path / "system", tmp_path / "root"
    write_mnist_family(system, gz=True)
    root.mkdir()
    data = build_data(
        make_cfg(
            f"dataset={dataset}",
            f"dataset.root={root}",
            f"dataset.system_dir={system}",
            "dataset.download=false",
        )
    )
    assert (len(data.train) + len(data.val), len(data.test)) == (N_TRAIN, N_TEST)
    x, _ = written_mnist(N_TEST, 1)
    assert torch.equal(data.test.x, x)

    raw = root / MNIST_DIRS[dataset] / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        IDX_FILES
    )  # no .gz, no leftover .partial
    for name in IDX_FILES:
        assert (raw / name).read_bytes() == gzip.decompress((system / f"{name}.gz").read_bytes()), (
            name
        )
    # the data folder now stands on its own
    again = build_data(
        make_cfg(
            f"dataset={dataset}",
            f"dataset.root={root}",
            f"dataset.system_dir={tmp_path / 'gone'}",
            "dataset.download=false",
        )
    )
    assert torch.equal(again.test.x, data.test.x)


def test_when_nothing_is_found_the_error_names_every_place_tried(make_cfg, tmp_path):
    root, system = tmp_path / "empty", tmp_path / "no-such-system-dir"
    root.mkdir()
    with pytest.raises(DlpyError) as err:
        build_data(
            make_cfg(
                f"dataset.root={root}", f"dataset.system_dir={system}", "dataset.download=false"
            )
        )
    message = str(err.value)
    assert str(root) in message
    assert str(system) in message
    assert "download" in message and "dataset.download=false" in message
    assert not list(root.iterdir()), "a failed search leaves the data folder alone"


def test_cifar10_loads_from_pickled_batches(cifar_dir, make_cfg):
    # class names come from batches.meta: write names that appear nowhere else
    names = [f"class-{i}" for i in reversed(range(10))]
    (cifar_dir / "cifar-10-batches-py" / "batches.meta").write_bytes(
        pickle.dumps({"label_names": names}, protocol=2)
    )
    data = build_data(
        make_cfg("dataset=cifar10", f"dataset.root={cifar_dir}", "dataset.download=false")
    )
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == torch.uint8 and split.x.shape[1:] == (3, 32, 32)
        assert split.y.dtype == torch.int64
    assert (len(data.train) + len(data.val), len(data.val), len(data.test)) == (
        N_TRAIN,
        VAL,
        N_TEST,
    )
    assert data.classes == names
    # HWC pixels of the pickled rows end up CHW, the colour planes in order
    x, y = images_and_labels(N_TEST, 32, 3, 10, 3)
    assert torch.equal(data.test.x, torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
    assert torch.equal(data.test.y, torch.from_numpy(y).long())


def test_a_channels_mismatch_names_dataset_channels(make_cfg):
    with pytest.raises(DlpyError, match="dataset.channels") as err:
        build_data(
            make_cfg("dataset=fashion_mnist", "dataset.channels=3", "dataset.download=false")
        )
    assert "3" in str(err.value) and "1" in str(err.value)


@pytest.mark.parametrize(
    "override",
    [
        "dataset.batch_size=0",
        "dataset.batch_size=-8",
        "dataset.batch_size=2.5",
        "dataset.eval_batch_size=0",
    ],
)
def test_batch_sizes_must_be_positive_integers(override, make_cfg):
    key = override.split("=")[0]
    with pytest.raises(DlpyError, match=f"{key} must be an integer >= 1"):
        build_data(make_cfg(override, "dataset.download=false"))


def indexed(data):
    """Labels replaced by sample indices, so each batch says which images it holds."""
    data.train = Split(data.train.x, torch.arange(len(data.train)))
    return data


def one_epoch(data):
    xs, idx = zip(*data.train_batches(), strict=False)
    return xs, torch.cat(idx)


def test_train_batches_are_normalised_with_the_configured_mean_and_std(make_cfg):
    mean, std = 0.25, 0.5
    data = indexed(
        build_data(
            make_cfg(
                "dataset.download=false",
                f"dataset.mean=[{mean}]",
                f"dataset.std=[{std}]",
                "dataset.batch_size=64",
                "dataset.augment.crop_padding=0",
                "dataset.augment.hflip=false",
            )
        )
    )
    data.seed(0)
    n = 0
    for x, idx in data.train_batches():
        assert x.dtype == torch.float32 and x.shape == (len(idx), 1, 28, 28)
        assert len(idx) == 64 or n + len(idx) == len(data.train)  # only the last batch is short
        expected = (data.train.x[idx].double() / 255 - mean) / std
        torch.testing.assert_close(x.double(), expected, rtol=0, atol=1e-5)
        n += len(idx)
    assert n == len(data.train)


def test_every_training_sample_comes_once_per_epoch_in_a_new_order(make_cfg):
    data = indexed(build_data(make_cfg("dataset.download=false", "dataset.batch_size=32")))
    data.seed(0)
    _, first = one_epoch(data)
    _, second = one_epoch(data)
    everything = torch.arange(len(data.train))
    assert torch.equal(first.sort().values, everything)
    assert torch.equal(second.sort().values, everything)
    assert not torch.equal(first, second)
    assert not torch.equal(first, everything)
    data.seed(0)  # the same seed replays the same epochs
    assert torch.equal(one_epoch(data)[1], first)


def slow_windows(image, padded_image, padding):
    """Every (top, left) whose window of the padded image equals `image`."""
    _, h, w = image.shape
    return [
        (top, left)
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
        if torch.equal(padded_image[:, top : top + h, left : left + w], image)
    ]


@pytest.mark.parametrize("padding", [1, 4])
def test_random_crop_takes_a_window_of_the_zero_padded_image(padding):
    torch.manual_seed(0)
    x = torch.randint(1, 256, (64, 3, 10, 12), dtype=torch.uint8)  # no zeros: padding stands out
    out = random_crop(x, padding, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    offsets = []
    for image, crop in zip(x, out, strict=False):
        padded = torch.zeros(3, 10 + 2 * padding, 12 + 2 * padding, dtype=torch.uint8)
        padded[:, padding : padding + 10, padding : padding + 12] = image
        found = slow_windows(crop, padded, padding)
        assert len(found) == 1, found
        offsets.append(found[0])
    assert len(set(offsets)) > 1, "every image got the same crop"
    assert any(o != (padding, padding) for o in offsets)
    assert torch.equal(random_crop(x, padding, torch.Generator().manual_seed(1)), out)
    assert not torch.equal(random_crop(x, padding, torch.Generator().manual_seed(2)), out)


def test_hflip_gives_each_image_or_its_mirror(make_cfg):
    data = indexed(
        build_data(
            make_cfg(
                "dataset.download=false",
                "dataset.augment.crop_padding=0",
                "dataset.augment.hflip=true",
            )
        )
    )
    data.seed(0)
    flipped = 0
    xs, idx = one_epoch(data)
    for x, i in zip(torch.cat(xs), idx, strict=False):
        plain = data.normalize(data.train.x[i : i + 1])[0]
        mirror = data.normalize(data.train.x[i : i + 1].flip(-1))[0]
        is_plain, is_mirror = torch.equal(x, plain), torch.equal(x, mirror)
        assert is_plain != is_mirror, int(i)
        flipped += is_mirror
    assert 0.3 * len(idx) < flipped < 0.7 * len(idx)
    data.seed(0)
    assert torch.equal(torch.cat(one_epoch(data)[0]), torch.cat(xs))


# -- image_folder ----------------------------------------------------------------------------------


def write_image_folder(root):
    """Two class folders of PNGs of assorted sizes; each 'b' image is red left, blue right."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(12):
        (root / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(
            root / "a" / f"{i}.png"
        )
        wide = np.zeros((20, 40, 3), dtype=np.uint8)
        wide[:, :20, 0], wide[:, 20:, 2] = 255, 255
        (root / "b").mkdir(exist_ok=True)
        Image.fromarray(wide).save(root / "b" / f"{i}.jpg" if i % 2 else root / "b" / f"{i}.png")
    return root


def test_image_folder_reads_classes_resizes_and_crops_the_centre(make_cfg, tmp_path):
    root = write_image_folder(tmp_path / "faces")
    data = build_data(
        make_cfg(
            "dataset=image_folder",
            f"dataset.root={root}",
            "dataset.image_size=16",
            "dataset.num_classes=2",
            "dataset.val_size=4",
            "dataset.test_size=4",
        )
    )
    assert (
        data.classes == ["a", "b"]
        and len(data.train) == 16
        and len(data.val) == len(data.test) == 4
    )
    assert data.train.x.shape[1:] == (3, 16, 16) and data.train.x.dtype == torch.uint8
    x = torch.cat([data.train.x, data.val.x, data.test.x])[
        torch.cat([data.train.y, data.val.y, data.test.y]) == 1
    ]
    # 20x40 scaled to 16x32, centre 16x16 crop: the left half stays red, the right half blue
    assert (
        (x[:, 0, :, :6] > 200).all()
        and (x[:, 2, :, -6:] > 200).all()
        and (x[:, 0, :, -6:] < 60).all()
    )


def test_image_folder_without_a_root_names_the_key(make_cfg):
    with pytest.raises(DlpyError, match=r"dataset\.root is required"):
        build_data(make_cfg("dataset=image_folder"))


def test_image_folder_of_no_images_names_the_folder(make_cfg, tmp_path):
    with pytest.raises(DlpyError, match=str(tmp_path)):
        build_data(make_cfg("dataset=image_folder", f"dataset.root={tmp_path}"))


@pytest.mark.slow
def test_dcgan_trains_on_64_pixel_images_from_a_folder(make_cfg, tmp_path):
    from dlpy.train import train

    root = write_image_folder(tmp_path / "faces")
    cfg = make_cfg(
        "model=dcgan",
        "dataset=image_folder",
        f"dataset.root={root}",
        "dataset.num_classes=2",
        "dataset.val_size=4",
        "dataset.test_size=4",
        "dataset.batch_size=8",
        "trainer.max_steps=2",
    )
    train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test/fid"] > 0


def test_training_batches_normalised_once_equal_those_normalised_batch_by_batch(
    make_cfg, monkeypatch
):
    from dlpy.data import vision

    def epoch():
        data = build_data(make_cfg())
        data.seed(0)
        return list(data.train_batches()), data

    once, data = epoch()
    assert data.normalized is not None  # no augmentation: the images were normalised once
    monkeypatch.setattr(vision, "NORMALIZED_BYTES", 0)  # too big to keep: batch by batch
    each, data = epoch()
    assert data.normalized is None and len(once) == len(each)
    for (x1, y1), (x2, y2) in zip(once, each, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
