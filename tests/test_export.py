"""`dlpy export`: ONNX and TorchScript files that hold the preprocessing, carry the class names and
config, agree with PyTorch on the test split, and load without dlpy."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import FAST
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dlpy import CONF_DIR
from dlpy.cli import main
from dlpy.runs import load_run
from dlpy.train import train

onnxruntime = pytest.importorskip("onnxruntime")  # the `export` extra, which make installs

CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

# Loads both files as their users would, in a fresh interpreter, and says which modules of dlpy
# were imported on the way: none may be.
LOAD_WITHOUT_DLPY = """
import json, sys
import numpy as np, onnxruntime, torch
folder = sys.argv[1]
pixels = np.zeros((3, 1, 28, 28), dtype=np.uint8)
session = onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
onnx_p = session.run(["probabilities"], {"pixels": pixels})[0]
module = torch.jit.load(folder + "/model.torchscript")
ts_p = module(torch.from_numpy(pixels))[1].detach().numpy()
dlpy = sorted(name for name in sys.modules if name.split(".")[0] == "dlpy")
print(json.dumps({"dlpy": dlpy, "diff": float(abs(onnx_p - ts_p).max())}))
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir):
    """A CNN trained for five batches on the tiny Fashion-MNIST files, exported to both formats."""
    folder = tmp_path_factory.mktemp("export") / "run"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", [f"data_dir={data_dir}", *FAST])
    train(cfg, folder)
    (folder / ".hydra").mkdir()
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    assert main(["export", str(folder), "format=onnx,torchscript"]) == 0
    return folder


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_the_export_agrees_with_pytorch_on_the_test_split(fmt, run):
    entry = json.loads((run / "export" / "export.json").read_text())[fmt]
    assert entry["test_images"] == 200
    assert entry["argmax_agreement"] == 1.0
    assert entry["max_abs_diff_logits"] < 1e-4
    assert entry["test/acc"] == entry["test/acc_pytorch"]
    assert entry["input"].startswith("pixels: uint8 (N, 1, H, W)")


def test_the_onnx_graph_takes_uint8_pixels_of_any_size_and_carries_classes_and_config(run):
    session = onnxruntime.InferenceSession(
        str(run / "export" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (pixels,) = session.get_inputs()
    assert pixels.name == "pixels"
    assert pixels.type == "tensor(uint8)"
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["classes"]) == CLASSES
    assert yaml.safe_load(meta["config"])["model"]["name"] == "cnn"
    big = np.random.default_rng(0).integers(0, 256, (4, 1, 56, 40), dtype=np.uint8)
    logits, probabilities = session.run(["logits", "probabilities"], {"pixels": big})
    assert logits.shape == probabilities.shape == (4, 10)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-5)


def test_the_torchscript_module_matches_the_network_and_carries_its_metadata(run):
    extra = {"classes.json": "", "config.yaml": "", "input.txt": ""}
    module = torch.jit.load(str(run / "export" / "model.torchscript"), _extra_files=extra)
    assert json.loads(extra["classes.json"]) == CLASSES
    assert yaml.safe_load(extra["config.yaml"])["dataset"]["name"] == "fashion_mnist"
    _, _, trainer = load_run([str(run)], "")
    x = trainer.data.test.x[:8]
    with torch.inference_mode():
        trainer.task.eval()
        expected = trainer.task.net(trainer.data.normalize(x))
        logits, probabilities = module(x)
    assert torch.allclose(logits, expected, atol=1e-4)
    assert torch.allclose(probabilities, expected.softmax(1), atol=1e-5)


@pytest.mark.slow  # a fresh interpreter imports torch: some 5 s
def test_the_exported_files_load_and_run_without_dlpy(run):
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_DLPY, str(run / "export")],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=run,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["dlpy"] == []
    assert result["diff"] < 1e-5  # the two formats agree


@pytest.mark.parametrize(
    "option, message",
    [("format=tflite", "format: Unknown value 'tflite'"), ("format=onnx,", "Unknown value ''")],
)
def test_an_unknown_format_fails_in_one_line(option, message, run, capsys):
    assert main(["export", str(run), option]) == 2
    assert message in capsys.readouterr().err
