"""Shared fixtures: small data sets in the exact upstream file formats, and config composition.

Real files are never needed: IDX files for the MNIST family (plain, as torchvision's raw/
layout keeps them, and gzipped, as Debian's dataset packages ship them) and pickled batches
for CIFAR. Images carry a class-dependent bright bar so that a few steps can learn something.
"""

import gzip
import logging
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from dlpy import CONF_DIR

# make test runs one pytest worker per core (pytest -n auto): each worker's torch, and the dlpy
# processes its tests start, take their share of the cores instead of all of them, since two
# workers with a thread per core each would fight over the cores. Set before torch is imported.
if workers := os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // int(workers))))

# pytester runs pytest on generated test files: tests/test_markers.py checks the gpu skip with it.
pytest_plugins = ["pytester"]

N_TRAIN, N_TEST = 600, 200
# trainer.threads=0: the tests share one process, so a preset's thread count must not leak into
# later tests
FAST = [
    "trainer=debug",
    "~callbacks.progress_bar",
    "trainer.threads=0",
    "dataset.val_size=100",
    "dataset.batch_size=32",
    "dataset.eval_batch_size=100",
]


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu are skipped, with the reason, where torch sees no CUDA device."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    import torch  # only when a gpu test is collected: collection stays light otherwise

    if torch.cuda.is_available():
        return
    for item in gpu_tests:
        item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


def images_and_labels(n, size, channels, classes, seed):
    """uint8 (n, size, size, channels) noise with a bright horizontal bar at the label's row."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, size, size, channels), dtype=np.uint8)
    rows = (labels.astype(int) % 10) * (size // 10) + 1
    x[np.arange(n), rows] = 255
    return x, labels


def idx_bytes(array):
    """IDX: magic (0, 0, dtype 0x08 = ubyte, ndim), big-endian int32 dims, then the raw data."""
    return (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def write_mnist_family(folder, gz=False):
    """The four upstream files: train/t10k x images/labels, 28x28, 10 classes."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", N_TRAIN, 0), ("t10k", N_TEST, 1)):
        x, y = images_and_labels(n, 28, 1, 10, seed)
        for name, array in (
            (f"{prefix}-images-idx3-ubyte", x[..., 0]),
            (f"{prefix}-labels-idx1-ubyte", y),
        ):
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


def write_cifar10(root):
    """cifar-10-batches-py: five pickled training batches, a test batch and batches.meta.

    Upstream pickles come from Python 2, whose str keys load as str with encoding="latin1".
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    x, y = images_and_labels(N_TRAIN, 32, 3, 10, 2)
    chw = x.transpose(0, 3, 1, 2).reshape(len(x), -1)  # rows are R, G, B planes, as upstream
    for i, part in enumerate(np.array_split(np.arange(N_TRAIN), 5)):
        batch = {
            "data": chw[part],
            "labels": y[part].tolist(),
            "batch_label": f"training batch {i + 1} of 5",
        }
        (folder / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch, protocol=2))
    xt, yt = images_and_labels(N_TEST, 32, 3, 10, 3)
    test = {"data": xt.transpose(0, 3, 1, 2).reshape(N_TEST, -1), "labels": yt.tolist()}
    (folder / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}, protocol=2))
    return root


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A data folder in torchvision's layout holding MNIST and Fashion-MNIST."""
    root = tmp_path_factory.mktemp("data")
    for name in ("MNIST", "FashionMNIST"):
        write_mnist_family(root / name / "raw")
    return root


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    """CIFAR-10 batches; torchvision's MD5 check is bypassed, as these are not the real files."""
    from torchvision import datasets

    monkeypatch.setattr(datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(
        datasets.cifar, "check_integrity", lambda path, md5=None: True
    )  # batches.meta
    return write_cifar10(tmp_path / "cifar")


@pytest.fixture
def make_cfg(data_dir):
    """Compose the training config with overrides, as `dlpy train` would (fast smoke settings
    first).

    The smoke settings of the dataset group apply where the chosen dataset has the key (a K-fold
    data set has no val_size).
    """

    def make(*overrides, fast=True):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("train", [f"data_dir={data_dir}", *overrides])
            smoke = [
                o
                for o in FAST
                if not o.startswith("dataset.") or o.partition("=")[0][8:] in cfg.dataset
            ]
            return compose("train", [f"data_dir={data_dir}", *(smoke if fast else []), *overrides])

    return make


@pytest.fixture
def run_cli(capsys, monkeypatch, data_dir):
    """`dlpy <args>` in this process, through the console script's code: (status, stdout, stderr).

    Hydra composes afresh each time, and the logging it sets up is taken down after the test.
    """
    from hydra.core.global_hydra import GlobalHydra

    from dlpy import cli

    monkeypatch.setattr(
        sys, "argv", list(sys.argv)
    )  # `dlpy train` hands its arguments to Hydra through sys.argv
    monkeypatch.setenv("DLPY_DATA_DIR", str(data_dir))
    handlers, level = logging.root.handlers[:], logging.root.level

    def run(*args):
        GlobalHydra.instance().clear()
        capsys.readouterr()
        try:
            status = cli.main(list(args))
        except SystemExit as stop:
            status = stop.code
        out, err = capsys.readouterr()
        return status, out, err

    yield run
    GlobalHydra.instance().clear()
    for handler in logging.root.handlers:
        if handler not in handlers:
            handler.close()
    logging.root.handlers[:], logging.root.level = handlers, level


@pytest.fixture(autouse=True)
def _no_system_data(monkeypatch):
    """Tests never pick up a system-wide copy of a data set by accident."""
    monkeypatch.setenv("DLPY_DATA_DIR", "/nonexistent/dlpy-data")


def presets(group):
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


# The registry-wide tests build the big model presets narrow and shallow: the same builder and
# architecture, in milliseconds instead of seconds (ResNet-50 at full width is 23.5M parameters).
SMALL_MODELS = {
    "alexnet": ["model.channels=[8,16,16,16,8]", "model.fc=[32,32]"],
    "densenet_bc": ["model.depth=16", "model.growth=4"],
    "googlenet": ["model.width=0.0625"],
    "resnet18": ["model.width=8"],
    "resnet34": ["model.width=8"],
    "resnet50": ["model.width=4"],
    "vgg": ["model.width=8", "model.fc=[32,32]"],
    "vgg13": ["model.width=8"],
}


# -- sequence and table data, in their upstream formats --------------------------------------------

JENA_HEADER = (
    '"Date Time","p (mbar)","T (degC)","Tpot (K)","Tdew (degC)","rh (%)",'
    '"VPmax (mbar)","VPact (mbar)","VPdef (mbar)","sh (g/kg)","H2OC (mmol/mol)",'
    '"rho (g/m**3)","wv (m/s)","max. wv (m/s)","wd (deg)"'
)


def write_jena(path, temperature, seed=0):
    """The Jena CSV: its header, a row every 10 min from 01.01.2009 00:10:00, T (degC) as given."""
    from datetime import datetime, timedelta

    rng = np.random.default_rng(seed)
    start, lines = datetime(2009, 1, 1, 0, 10), [JENA_HEADER]
    for i, t in enumerate(temperature):
        others = rng.normal(0, 1, 13) + np.arange(13)
        values = [others[0] + 990, t, *others[1:]]
        lines.append(
            (start + timedelta(minutes=10 * i)).strftime("%d.%m.%Y %H:%M:%S")
            + ","
            + ",".join(f"{v:.2f}" for v in values)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


REVIEW_WORDS = {"pos": "great wonderful loved superb", "neg": "awful boring hated dull"}


def write_aclimdb(root, per_class=30):
    """aclImdb/(train|test)/(pos|neg)/<id>_<stars>.txt.

    A review's sentiment words tell its class.
    """
    rng = np.random.default_rng(0)
    filler = "the a movie film plot actor scene story and of it was".split()
    for split in ("train", "test"):
        for sentiment, stars in (("pos", 8), ("neg", 2)):
            folder = root / "aclImdb" / split / sentiment
            folder.mkdir(parents=True)
            for i in range(per_class):
                words = (
                    list(rng.choice(filler, rng.integers(5, 40)))
                    + REVIEW_WORDS[sentiment].split()[: 1 + i % 4]
                )
                rng.shuffle(words)
                (folder / f"{i}_{stars}.txt").write_text(
                    " ".join(words).capitalize() + ".<br /><br />The end."
                )
    return root


def write_boston(path, n=506, seed=0):
    """Keras's boston_housing.npz: x (506, 13) float64, y (506,) prices; here y is linear in x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(5, 3, (n, 13))
    y = x @ np.linspace(-1, 1, 13) + 22
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return path
