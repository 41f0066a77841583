"""dataset=image_folder: classes and splits from the folders, the decode cache, bad files.

Every folder here is a few dozen tiny PNGs written by the test; an image of class k is filled with
the grey level 40 * k + 20, so a label can be checked against its pixels.
"""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_mnist_family
from PIL import Image

from dlpy.build import build_data
from dlpy.data import image_cache
from dlpy.data.folder import image_folder
from dlpy.errors import DlpyError

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
GREY = {"image_size": 8, "channels": 1, "mean": [0.5], "std": [0.5]}


def write_class(folder, label, n, start=0):
    """n PNGs of assorted sizes, each filled with its class's grey level."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        pixels = np.full((10 + i % 5, 12, 3), 40 * label + 20, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def write_folder(root, classes=("cat", "dog", "owl"), n=10):
    for label, name in enumerate(classes):
        write_class(root / name, label, n)
    return root


def build(root, **options):
    options = {"val_size": 0.2, "test_size": 0.2, "model_task": "classification", **options}
    return image_folder(root=root, **GREY, **options)


def labels_match_pixels(split):
    return torch.equal(split.x[:, 0, 0, 0].long(), 40 * split.y + 20)


def test_classes_come_from_the_subfolders_and_splits_are_held_out_by_fraction(tmp_path):
    data = build(write_folder(tmp_path / "pets"))
    assert data.classes == ["cat", "dog", "owl"]
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 6)
    assert data.train.x.shape[1:] == (1, 8, 8)
    assert data.train.x.dtype == torch.uint8
    assert all(labels_match_pixels(s) for s in (data.train, data.val, data.test))
    counted = build(tmp_path / "pets", val_size=4, test_size=5)  # counts, as before
    assert (len(counted.val), len(counted.test)) == (4, 5)


def test_splits_come_from_train_val_test_folders(tmp_path):
    root = tmp_path / "pets"
    write_folder(root / "train", n=6)
    write_folder(root / "val", classes=("cat", "dog"), n=2)
    write_folder(root / "test", n=3)
    data = build(root)
    assert data.classes == ["cat", "dog", "owl"]
    assert (len(data.train), len(data.val), len(data.test)) == (18, 4, 9)
    assert all(labels_match_pixels(s) for s in (data.train, data.val, data.test))
    (root / "test").rename(tmp_path / "elsewhere")  # no test/: held out of train/
    data = build(root, test_size=3)
    assert (len(data.train), len(data.val), len(data.test)) == (15, 4, 3)


def test_num_classes_is_read_from_the_folder_and_a_wrong_one_names_both(make_cfg, tmp_path):
    root = write_folder(tmp_path / "pets")
    options = ["dataset=image_folder", f"dataset.root={root}", "dataset.image_size=8"]
    cfg = make_cfg(*options, "dataset.val_size=0.2")
    assert cfg.model.num_classes == 3  # the cnn's output layer, from dataset.num_classes
    assert build_data(cfg).classes == ["cat", "dog", "owl"]
    with pytest.raises(DlpyError, match=rf"dataset.num_classes is 5, but {root} has 3 class"):
        build_data(make_cfg(*options, "dataset.val_size=0.2", "dataset.num_classes=5"))


def test_a_classifier_refuses_one_class_but_a_gan_takes_a_flat_folder(make_cfg, tmp_path):
    root = tmp_path / "faces"
    write_class(root, 0, 10)
    with pytest.raises(DlpyError, match=rf"{root} holds one class"):
        build(root)
    options = [f"dataset.root={root}", "dataset.image_size=8", "dataset.val_size=2"]
    cfg = make_cfg("model=dcgan", "dataset=image_folder", *options, "dataset.test_size=2")
    assert cfg.dataset.num_classes == 1
    data = build_data(cfg)
    assert len(data.train) == 6
    assert data.root == root / ".dlpy-cache"  # the FID network's cache: never taken for a class


def test_an_empty_split_names_the_folder(tmp_path):
    root = tmp_path / "pets"
    write_folder(root / "train", n=4)
    (root / "val" / "cat").mkdir(parents=True)
    (root / "val" / "cat" / "broken.png").write_bytes(b"")
    with pytest.raises(DlpyError, match=rf"the val split of {root} holds no readable images"):
        build(root)
    with pytest.raises(DlpyError, match=rf"dataset.test_size=0.01 of the 12 images in {root}"):
        build(tmp_path / "pets" / "train", test_size=0.01)


def count_decodes(monkeypatch):
    calls = []
    read = image_cache.read_image
    monkeypatch.setattr(image_cache, "read_image", lambda *a: calls.append(a[0]) or read(*a))
    return calls


def test_the_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "pets")
    calls = count_decodes(monkeypatch)
    first = build(root)
    assert len(calls) == 30
    again = build(root)
    assert len(calls) == 30  # no file decoded again
    assert torch.equal(first.train.x, again.train.x)
    assert torch.equal(first.train.y, again.train.y)
    changed = root / "cat" / "3.png"
    Image.fromarray(np.full((9, 9), 255, dtype=np.uint8)).save(changed)
    rebuilt = build(root)
    assert changed in calls[30:]
    assert 0 < len(calls) - 30 <= 18  # the split that holds it, not the others
    all_x = torch.cat([rebuilt.train.x, rebuilt.val.x, rebuilt.test.x])
    assert (all_x[:, 0, 0, 0] == 255).sum() == 1
    assert len(list((root / ".dlpy-cache").glob("*.u8"))) == 3  # stale caches are removed


def test_a_killed_decode_leaves_no_cache(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "pets")

    def killed(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(image_cache, "read_image", killed)
    with pytest.raises(KeyboardInterrupt):
        build(root)
    assert not [p for p in (root / ".dlpy-cache").iterdir()]
    monkeypatch.undo()
    assert len(build(root).train) == 18


def test_a_large_cache_is_memory_mapped(tmp_path, monkeypatch):
    root = write_folder(tmp_path / "pets")
    files = sorted(root.rglob("*.png"))
    in_memory = image_cache.decode_cached(root, "all", files, 8, 1)
    monkeypatch.setattr(image_cache, "fits_in_memory", lambda nbytes: False)
    mapped = image_cache.decode_cached(root, "all", files, 8, 1)
    assert isinstance(mapped.x, np.memmap)
    assert not isinstance(in_memory.x, np.memmap)
    assert np.array_equal(mapped.x, in_memory.x)
    mapped.x[0] = 0  # copy-on-write: the cache file keeps its pixels
    assert np.array_equal(image_cache.decode_cached(root, "all", files, 8, 1).x, in_memory.x)


def write_bad_files(folder):
    """An empty PNG, text named .jpg and a PNG cut in half."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image")
    whole = folder / "0.png"
    (folder / "cut.png").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])


def write_bombs(folder):
    """Two images too large for a PIL.Image.MAX_IMAGE_PIXELS of 1000: 1600 pixels make PIL warn,
    2500 (over twice the limit) make it fail."""
    Image.fromarray(np.zeros((40, 40), dtype=np.uint8)).save(folder / "bomb.png")
    Image.fromarray(np.zeros((50, 50), dtype=np.uint8)).save(folder / "big_bomb.png")


def test_bad_files_are_skipped_and_named_in_one_warning(tmp_path, monkeypatch, caplog):
    root = write_folder(tmp_path / "pets")
    write_bad_files(root / "dog")
    (root / "README.txt").write_text("my pets")
    with caplog.at_level(logging.WARNING, logger="dlpy"):
        data = build(root)
    assert len(data.train) + len(data.val) + len(data.test) == 30
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"skipped 4 of the 34 files under {root}" in warnings[0]
    assert "and 1 more" in warnings[0]
    assert "\n" not in warnings[0]
    caplog.clear()
    calls = count_decodes(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="dlpy"):
        build(root)  # from the cache: still named, never read again
    assert not calls
    assert "skipped 4 of the 34 files" in caplog.records[0].getMessage()


def test_each_kind_of_bad_file_has_its_reason(tmp_path, monkeypatch):
    write_class(tmp_path, 0, 1)
    write_bad_files(tmp_path)
    write_bombs(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    reasons = {
        p.name: image_cache.why_unreadable(p, 8, 1)[1] for p in tmp_path.iterdir() if p.is_file()
    }
    assert reasons["0.png"] == ""
    assert reasons["empty.png"] == "empty file"
    assert "cannot identify image file" in reasons["notes.jpg"]
    assert reasons["cut.png"]
    # `dlpy predict` skips a bomb it is given, named; an image folder refuses it (test_bad_data.py)
    assert "exceeds limit" in reasons["bomb.png"]
    assert "decompression bomb" in reasons["big_bomb.png"]
    for name in ("bomb.png", "big_bomb.png"):
        with pytest.raises(DlpyError, match=rf"{tmp_path / name} is refused as a decompression"):
            image_cache.why_unreadable(tmp_path / name, 8, 1, refuse_bombs=True)


def test_the_fashion_mnist_script_writes_class_folders_and_bad_files(tmp_path, caplog):
    write_mnist_family(tmp_path / "source", gz=True)
    script = [sys.executable, str(SCRIPTS / "fashion_mnist_folder.py"), str(tmp_path / "fm")]
    source = ["--source", str(tmp_path / "source"), "--limit", "60"]
    subprocess.run([*script, *source], check=True, capture_output=True, timeout=60)
    with caplog.at_level(logging.WARNING, logger="dlpy"):
        data = build(tmp_path / "fm", val_size=10, test_size=10)
    assert len(data.classes) == 10
    assert len(data.train) + len(data.val) + len(data.test) == 60
    message = caplog.records[0].getMessage()
    assert "skipped 3 of the 63 files" in message
    for name in ("empty.png", "notes.jpg", "truncated.png"):
        assert name in message


def test_a_photo_is_turned_upright_by_its_exif_orientation(tmp_path):
    pixels = np.zeros((10, 20), dtype=np.uint8)
    pixels[:, :10] = 255  # white on the left, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF Orientation 6: show it turned 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "photo.png", exif=exif)
    x = image_cache.read_image(tmp_path / "photo.png", 8, 1)[0]
    assert (x[:3] > 200).all()  # upright, the white half is on top
    assert (x[-3:] < 50).all()
