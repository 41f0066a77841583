"""Data that parses but is unfit to train on is refused before training, in one line naming it.

NaN or infinite values, arrays of different lengths, empty splits, one-class classification sets,
decompression bombs, unreadable images and folders, ragged or NaN word vectors, empty texts, and
pixels outside the range a decoder or generator can reach (dlpy/data/checks.py). Each case runs
`dlpy train` in this process, on a few-kilobyte file in its upstream format.
"""

import json
import os
import re

import numpy as np
import pytest
import torch
from conftest import write_aclimdb, write_boston, write_jena
from PIL import Image
from torch import nn

from dlpy.data import checks
from dlpy.data.tabular import read_boston
from dlpy.data.text import load_glove, text
from dlpy.data.timeseries import jena_climate
from dlpy.data.vision import ImageData, Split
from dlpy.errors import DlpyError
from dlpy.registry import DATASETS
from dlpy.tasks.autoencoder import Autoencoder
from dlpy.tasks.gan import GAN, WGANGP

SMOKE = [
    "trainer=debug",
    "~callbacks.progress_bar",
    "trainer.threads=0",
    "trainer.max_steps=1",
    "trainer.limit_eval_batches=1",
]


def refused(run_cli, tmp_path, *overrides):
    """`dlpy train` fails in one line, names what it must, and leaves no finished-looking run."""
    run = tmp_path / "run"
    status, out, err = run_cli("train", *SMOKE, f"hydra.run.dir={run}", *overrides)
    assert status not in (0, None), out + err
    assert "Traceback" not in out + err
    assert err.count("\n") == 1 and err.startswith("dlpy: error: "), err
    metrics = run / "metrics.json"
    assert not metrics.exists() or json.loads(metrics.read_text())["status"] == "failed"
    assert not (run / "checkpoints").exists()
    return err


def boston(tmp_path, x, y):
    path = tmp_path / "data" / "boston_housing.npz"
    path.parent.mkdir()
    np.savez(path, x=x, y=y)
    return ["model=mlp", "dataset=boston_housing", f"dataset.root={path.parent}", "dataset.fold=0"]


def image(path, level=0, size=10):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), level, dtype=np.uint8)).save(path)
    return path


def image_folder(root, *extra):
    return [
        "model=cnn",
        "dataset=image_folder",
        f"dataset.root={root}",
        "dataset.image_size=8",
        "dataset.channels=1",
        "dataset.mean=[0.5]",
        "dataset.std=[0.5]",
        "dataset.val_size=2",
        "dataset.test_size=2",
        *extra,
    ]


def pets(root, classes=("cat", "dog"), n=6):
    for label, name in enumerate(classes):
        for i in range(n):
            image(root / name / f"{i}.png", 40 * label + 20)
    return root


def imdb(root, *extra):
    return [
        "model=mlp",
        "dataset=imdb",
        f"dataset.root={root}",
        "dataset.download=false",
        "dataset.val_size=10",
        "dataset.vocab_size=30",
        *extra,
    ]


def test_a_nan_feature_names_the_file_and_the_house(run_cli, tmp_path):
    x = np.random.default_rng(0).normal(size=(506, 13))
    x[3, 4] = np.nan
    err = refused(run_cli, tmp_path, *boston(tmp_path, x, np.ones(506)))
    assert "boston_housing.npz: 1 of the 6578 values of x are NaN or infinite" in err
    assert "(nan) at house 3, feature 4" in err


def test_features_and_prices_of_different_lengths_name_the_file(run_cli, tmp_path):
    err = refused(run_cli, tmp_path, *boston(tmp_path, np.ones((506, 13)), np.ones(500)))
    assert "boston_housing.npz: the arrays must hold one row per sample each" in err
    assert "x has 506, y has 500" in err


def test_no_test_split_is_refused_naming_the_key(run_cli, tmp_path):
    write_boston(tmp_path / "data" / "boston_housing.npz")
    args = ["model=mlp", "dataset=boston_housing", f"dataset.root={tmp_path / 'data'}"]
    assert "dataset.test_split" in refused(run_cli, tmp_path, *args, "dataset.test_split=0")


def test_a_nan_in_the_jena_record_names_the_file_and_the_line(run_cli, tmp_path):
    path = write_jena(tmp_path / "jena_climate_2009_2016.csv", np.arange(400) * 0.1)
    lines = path.read_text().splitlines()
    fields = lines[9].split(",")
    fields[2] = "nan"  # T (degC) of the 9th row, on line 10
    lines[9] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    args = ["model=lstm", "dataset=jena_climate", f"dataset.root={tmp_path}"]
    window = ["dataset.sampling_rate=2", "dataset.sequence_length=4", "dataset.delay=6"]
    err = refused(run_cli, tmp_path, *args, *window)
    assert f"{path}: 1 of the 5600 values of the measurements are NaN" in err
    assert "at line 10 (T (degC))" in err


def test_an_image_folder_of_one_class_is_refused_for_a_classifier(run_cli, tmp_path):
    root = pets(tmp_path / "pets", classes=("cat",))
    err = refused(run_cli, tmp_path, *image_folder(root))
    assert f"dataset.root: {root} holds one class (cat): a classifier needs two" in err


def test_a_decompression_bomb_is_refused_naming_the_file(run_cli, tmp_path, monkeypatch):
    root = pets(tmp_path / "pets")
    bomb = image(root / "dog" / "huge.png", size=40)  # 1600 pixels: over the lowered limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    err = refused(run_cli, tmp_path, *image_folder(root))
    assert f"dataset.root: {bomb} is refused as a decompression bomb" in err
    assert not list((root / ".dlpy-cache").glob("*.json"))  # no cache holds the folder's state


def test_a_split_of_corrupt_images_names_each_file_and_why(run_cli, tmp_path):
    root = tmp_path / "pets"
    pets(root / "train")
    pets(root / "test", n=2)
    (root / "val" / "cat").mkdir(parents=True)
    (root / "val" / "cat" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    err = refused(run_cli, tmp_path, *image_folder(root))
    assert f"the val split of {root} holds no readable images: val/cat/cut.png (" in err


def test_a_class_of_corrupt_images_names_its_files(run_cli, tmp_path):
    root = tmp_path / "pets"
    pets(root / "train")
    for split in ("val", "test"):
        pets(root / split, classes=("cat", "dog", "owl"), n=1)
    for i in range(4):
        (root / "train" / "owl").mkdir(exist_ok=True)
        (root / "train" / "owl" / f"{i}.jpg").write_text("not an image")
    err = refused(run_cli, tmp_path, *image_folder(root))
    assert "no image of class 'owl' could be read: train/owl/0.jpg (cannot identify image" in err
    assert "and 1 more" in err


def test_a_folder_that_cannot_be_listed_is_named(run_cli, tmp_path, monkeypatch):
    root = pets(tmp_path / "pets")
    locked = root / "dog"
    scandir = os.scandir

    def denied(path="."):  # what a folder without read permission gives (tests run as root)
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    err = refused(run_cli, tmp_path, *image_folder(root))
    assert f"dataset.root: {locked} cannot be read: Permission denied" in err


def test_a_ragged_vectors_file_names_the_file_and_the_line(run_cli, tmp_path):
    root = write_aclimdb(tmp_path / "imdb", per_class=4)
    vectors = tmp_path / "glove.txt"
    vectors.write_text("great 1 2 3\nawful 1 2\n")
    err = refused(run_cli, tmp_path, *imdb(root, "dataset.val_size=2", f"dataset.glove={vectors}"))
    assert f"dataset.glove: {vectors} line 2 has 2 numbers, the lines before 3" in err


def test_an_empty_review_names_the_file(run_cli, tmp_path):
    root = write_aclimdb(tmp_path / "imdb", per_class=4)
    empty = root / "aclImdb" / "test" / "neg" / "2_2.txt"
    empty.write_text("")
    err = refused(run_cli, tmp_path, *imdb(root, "dataset.val_size=2"))
    assert f"{empty} holds no words" in err


def test_an_empty_text_file_names_the_file(run_cli, tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    err = refused(run_cli, tmp_path, "model=char_lstm", "dataset=text", f"dataset.path={path}")
    assert f"{path} is empty" in err


def test_a_vae_refuses_standardised_pixels_naming_both_options(run_cli, tmp_path):
    err = refused(
        run_cli, tmp_path, "model=vae", "dataset.scaling=standardize", "dataset.val_size=100"
    )
    assert (
        "model.task.name=vae (a Bernoulli decoder, BCE) needs pixels in [0, 1], but "
        "dataset.scaling=standardize gives [-0.81, 2.02]: set dataset.scaling=unit"
    ) in err


def grey_images(scaling, mean=0.2, std=0.3):
    x = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    split = Split(x, torch.tensor([0, 1, 0, 1]))
    return ImageData(split, split, split, ["a", "b"], [mean], [std], 2, 2, scaling=scaling)


@pytest.mark.parametrize(
    "task, scaling, named",
    [
        (Autoencoder(nn.Identity(), None, loss="bce"), "standardize", "model.task.loss=bce"),
        (Autoencoder(nn.Identity(), None, loss="mse"), "symmetric", "model.task.loss=mse"),
        (GAN(nn.Identity(), None), "standardize", "model.task.name=gan (a tanh generator)"),
        (WGANGP(nn.Identity(), None), "unit", None),  # [0, 1] is inside tanh's range
        (GAN(nn.Identity(), None), "symmetric", None),
        (Autoencoder(nn.Identity(), None), "unit", None),
    ],
)
def test_decoders_and_generators_check_the_range_of_the_pixels(task, scaling, named):
    data = grey_images(scaling)
    if named is None:
        task.attach(data)
        return
    with pytest.raises(DlpyError, match=rf"{re.escape(named)} needs pixels in \[-?[01], 1\]"):
        task.attach(data)
    task.attach(data.rescaled("unit" if "loss" in named else "symmetric"))  # the fix it names


def test_standardised_pixels_of_mean_and_std_one_half_are_symmetric_ones():
    """The check reads the range of the scaled pixels, not the scaling's name."""
    GAN(nn.Identity(), None).attach(grey_images("standardize", mean=0.5, std=0.5))


# -- the same checks through the builders, without a run: milliseconds each ------------------------


def test_an_infinite_price_names_the_file_and_the_house(tmp_path):
    path = tmp_path / "boston_housing.npz"
    y = np.ones(506)
    y[7] = np.inf
    np.savez(path, x=np.ones((506, 13)), y=y)
    with pytest.raises(DlpyError, match=rf"{path}: 1 of the 506 values of y .*\(inf\) at house 7"):
        read_boston(path, 13)


@pytest.mark.parametrize(
    "content, named",
    [
        (
            "great 1 2 3\nawful 1 nan 3\n",
            "the vectors are NaN or infinite, the first (nan) at line 2",
        ),
        ("great 1 2 3\nawful 1 two 3\n", "line 2: could not convert string to float: 'two'"),
        ("zebra 1 2 3\n", "holds a vector for none of the 2 words of the vocabulary"),
    ],
    ids=["nan", "not a number", "no word of the vocabulary"],
)
def test_a_bad_vectors_file_names_the_file_and_the_line(content, named, tmp_path):
    vectors = tmp_path / "glove.txt"
    vectors.write_text(content)
    with pytest.raises(
        DlpyError, match=re.escape(f"dataset.glove: {vectors}") + ".*" + re.escape(named)
    ):
        load_glove(vectors, {"great": 2, "awful": 3}, 4)


def test_too_short_a_record_for_a_test_window_names_the_file(tmp_path):
    path = write_jena(tmp_path / "jena_climate_2009_2016.csv", np.arange(100) * 0.1)
    window = {"sampling_rate": 2, "sequence_length": 4, "delay": 6, "val_fraction": 0.45}
    with pytest.raises(DlpyError, match=rf"{path}: the test split would be empty: its 100 rows"):
        jena_climate(root=tmp_path, download=False, **window)


def test_a_text_too_short_for_a_test_sample_names_the_file(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("the quick brown fox " * 50)
    with pytest.raises(DlpyError, match=rf"{path}: the test split would be empty: a sample takes"):
        text(root=tmp_path, path=str(path), val_size=100, test_size=30, maxlen=40)
    text(root=tmp_path, path=str(path), val_size=0, test_size=100, maxlen=40)  # no val: asked for


@pytest.mark.parametrize("option, value", [("vocab_size", 2), ("max_length", 0)])
def test_a_vocabulary_of_unknowns_or_reviews_of_no_words_are_refused(option, value, tmp_path):
    with pytest.raises(DlpyError, match=rf"dataset.{option}"):
        DATASETS.build("imdb", key="dataset", root=tmp_path, download=False, **{option: value})


def test_finite_counts_the_bad_values_and_finds_the_first():
    values = np.zeros((4, 3), dtype=np.float32)
    values[2, 1] = -np.inf
    values[3, 0] = np.nan
    checks.finite("f.npz", "x", np.zeros((4, 3)))
    checks.finite("f.npz", "labels", np.arange(5))  # integers hold no NaN
    with pytest.raises(
        DlpyError, match=r"f.npz: 2 of the 12 values of x .* \(-inf\) at row 2, column 1"
    ):
        checks.finite("f.npz", "x", values)


def test_every_class_names_the_first_class_without_samples():
    checks.every_class("s", ["a", "b"], np.array([0, 1, 1]))
    with pytest.raises(DlpyError, match=r"s: class 'b' has no training samples \(nor have 1 more"):
        checks.every_class("s", ["a", "b", "c"], np.array([0, 0]))
