"""Files that are not what they claim: broken data files are named in one line, no file runs code.

Checkpoints cut short, foreign or carrying code are tested in tests/test_io.py; here, one that holds
weights but nothing to resume from.
"""

import ast
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_aclimdb, write_boston, write_cifar10, write_jena, write_mnist_family
from test_io import RunsCode

import dlpy
from dlpy import CONF_DIR
from dlpy.build import build_data
from dlpy.errors import DlpyError
from dlpy.io import save_checkpoint
from dlpy.train import train

# -- Data files that are cut short, corrupted or not the upstream ones are named -------------------


def corrupt(path, how):
    data = path.read_bytes()
    path.write_bytes(
        {
            "truncated": data[: len(data) // 2],
            "garbage": b"\x13\x37" * 64,
            "not utf-8": data[:5] + b"\xff\xfe\xfa" + data[5:],
        }[how]
    )
    return path


@pytest.mark.parametrize(
    "name, how, message",
    [
        (
            "train-images-idx3-ubyte",
            "truncated",
            "is truncated or corrupted: its header announces 470416 bytes",
        ),
        ("t10k-labels-idx1-ubyte", "truncated", "is truncated or corrupted"),
        ("train-labels-idx1-ubyte", "garbage", "is not an IDX file"),
    ],
)
def test_a_broken_idx_file_is_named(name, how, message, data_dir, tmp_path, make_cfg):
    shutil.copytree(data_dir / "FashionMNIST", tmp_path / "FashionMNIST")
    path = corrupt(tmp_path / "FashionMNIST" / "raw" / name, how)
    with pytest.raises(DlpyError, match=f"{re.escape(str(path))} {message}"):
        build_data(make_cfg(f"dataset.root={tmp_path}", "dataset.download=false"))


def test_a_label_out_of_range_names_the_folder_of_the_label_files(data_dir, tmp_path, make_cfg):
    shutil.copytree(data_dir / "FashionMNIST", tmp_path / "FashionMNIST")
    labels = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-1] + b"\xc8")  # the right size, a class 200
    with pytest.raises(
        DlpyError, match=f"class 200, but there are 10 classes: a label file under {tmp_path}"
    ):
        build_data(make_cfg(f"dataset.root={tmp_path}", "dataset.download=false"))


def test_a_cut_gzip_in_the_system_folder_is_named(tmp_path, make_cfg):
    write_mnist_family(tmp_path / "system", gz=True)
    path = corrupt(tmp_path / "system" / "t10k-images-idx3-ubyte.gz", "truncated")
    with pytest.raises(DlpyError, match=f"{re.escape(str(path))} cannot be unpacked"):
        build_data(
            make_cfg(
                f"dataset.root={tmp_path / 'data'}",
                f"dataset.system_dir={tmp_path / 'system'}",
                "dataset.download=false",
            )
        )
    assert not list((tmp_path / "data").rglob("*.partial"))


def test_a_cifar_batch_that_is_not_the_upstream_file_is_named_by_its_md5(
    tmp_path, make_cfg, monkeypatch
):
    """torchvision checks each batch's MD5 before it unpickles it.

    The fixture's MD5s stand in for upstream's.
    """
    from torchvision import datasets

    folder = write_cifar10(tmp_path) / "cifar-10-batches-py"
    md5 = {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    monkeypatch.setattr(
        datasets.CIFAR10,
        "train_list",
        [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)],
    )
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(
        datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": md5["batches.meta"]}
    )
    cfg = make_cfg("dataset=cifar10", f"dataset.root={tmp_path}", "dataset.download=false")
    assert len(build_data(cfg).test) == 200  # with every MD5 right, the files load
    path = corrupt(folder / "data_batch_3", "truncated")
    with pytest.raises(
        DlpyError, match=f"{re.escape(str(path))} is corrupted or not the upstream file"
    ):
        build_data(cfg)


@pytest.mark.parametrize(
    "dataset, how",
    [("boston_housing", "truncated"), ("jena_climate", "truncated"), ("imdb", "not utf-8")],
)
def test_a_broken_table_series_or_text_file_is_named(dataset, how, tmp_path, make_cfg):
    if dataset == "boston_housing":
        path = corrupt(write_boston(tmp_path / "boston_housing.npz"), how)
        extra = ["dataset.fold=0"]
    elif dataset == "jena_climate":
        path = corrupt(
            write_jena(tmp_path / "jena_climate_2009_2016.csv", np.arange(400) * 0.1), how
        )
        extra = []
    else:
        path = corrupt(
            sorted((write_aclimdb(tmp_path) / "aclImdb" / "train" / "pos").glob("*.txt"))[3], how
        )
        extra = ["dataset.val_size=10"]
    with pytest.raises(DlpyError, match=f"{re.escape(str(path))} cannot be read"):
        build_data(
            make_cfg(
                f"dataset={dataset}", f"dataset.root={tmp_path}", "dataset.download=false", *extra
            )
        )


def test_a_checkpoint_of_weights_alone_cannot_be_resumed_from_naming_the_file(make_cfg, tmp_path):
    path = tmp_path / "weights.pt"
    save_checkpoint(
        {"task": {}, "floor": 0.5}, path
    )  # a dlpy file, as the FID feature cache writes, not a run's
    with pytest.raises(
        DlpyError, match=f"checkpoint {re.escape(str(path))} holds weights but no training state"
    ):
        train(make_cfg("model=mlp", f"trainer.resume={path}"), tmp_path / "run")


# -- Nothing in dlpy runs code from a config or a file ---------------------------------------------


def risky_calls(source):
    """Calls that run code from a string or unpickle.

    eval, exec, pickle, yaml.load, torch.load without weights_only=True, np.load with
    allow_pickle=True, Hydra's instantiate, importing a module by name.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        keywords = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if (
            name
            in (
                "eval",
                "exec",
                "compile",
                "__import__",
                "importlib.import_module",
                "instantiate",
                "call",
            )
            or name.startswith(("pickle.", "hydra.utils.", "marshal.", "shelve."))
            or (name.startswith("yaml.") and name not in ("yaml.safe_load", "yaml.safe_dump"))
            or (name == "torch.load" and keywords.get("weights_only") != "True")
            or (name.endswith("np.load") and keywords.get("allow_pickle") == "True")
        ):
            found.append(f"{name} (line {node.lineno})")
    return found


def test_pretrained_weights_in_the_hub_cache_are_loaded_without_running_code(tmp_path, monkeypatch):
    """`dlpy visualize weights=...` reads torchvision's file from torch's hub cache.

    Anyone may have put one there.
    """
    from torchvision import models

    from dlpy.visualize import pretrained

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cached = (
        tmp_path
        / "hub"
        / "checkpoints"
        / Path(models.get_model_weights("inception_v3").DEFAULT.url).name
    )
    cached.parent.mkdir(parents=True)
    torch.save({"payload": RunsCode()}, cached)
    with pytest.raises(DlpyError, match="weights=inception_v3: cannot load"):
        pretrained("inception_v3", torch.device("cpu"))
    assert not (tmp_path / "pwned.txt").exists()


def test_no_module_of_dlpy_evaluates_strings_or_unpickles_untrusted_files():
    package = Path(dlpy.__file__).parent
    found = {
        str(path.relative_to(package)): calls
        for path in sorted(package.rglob("*.py"))
        if (calls := risky_calls(path.read_text()))
    }
    # dlpy's own modules are imported by name at the top of dlpy/catalog.py, none by a string
    assert found == {}
    assert risky_calls(
        "torch.load(f)\neval('1')\nnp.load(p, allow_pickle=True)\ntorch.load(f, weights_only=True)"
    ) == [
        "torch.load (line 1)",
        "eval (line 2)",
        "np.load (line 3)",
    ]  # the scan itself finds what it looks for


def test_configs_ask_hydra_to_instantiate_nothing_but_dlpy_objects():
    """Builders are chosen by `name:` through dlpy's registries.

    The only `_target_`s are Hydra callbacks of dlpy's own: the sweep's record, and the joblib
    preset's stop of its workers (a `_target_` could name any callable).
    """
    targets = {
        p.name: re.findall(r"_target_:\s*(\S+)", p.read_text())
        for p in Path(CONF_DIR).rglob("*.yaml")
    }
    assert {name: found for name, found in targets.items() if found} == {
        "train.yaml": ["dlpy.sweep.SweepRecord"],
        "joblib.yaml": ["dlpy.sweep.StopJoblibWorkers"],
    }
