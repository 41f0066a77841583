"""`dlpy export <run> format=onnx|torchscript`: an image classifier that runs without dlpy.

The exported graph holds the run's preprocessing. Its input, `pixels`, is uint8 (N, C, H, W):
C the data's channels (1 grey, 3 RGB), values 0-255 as in an image file, any H x W; the graph
resizes to the data's size (bilinear; at that size, 28 x 28 for Fashion-MNIST, it changes
nothing), normalises as the training batches were, and returns `logits` and `probabilities`,
both (N, classes). The class names, the run's config and a line on the input travel in the file:
ONNX metadata_props, TorchScript extra files. After writing, the file is loaded as a user would
load it (an onnxruntime session; torch.jit.load), which runs no Python code of dlpy's, and
checked against the PyTorch network on the test split: the largest absolute difference of the
outputs and the share of equal argmaxes, printed and saved in export.json beside the file.
"""

import copy
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError, check_choice
from dlpy.io import atomic_write, save_json
from dlpy.runs import class_names, load_run, own_options
from dlpy.tasks.classification import Classification
from dlpy.tasks.language_model import CharLanguageModel
from dlpy.trainer import Trainer

USAGE = "dlpy export <run dir> format=onnx|torchscript [key=value ...]"
FILES = {"onnx": "model.onnx", "torchscript": "model.torchscript"}
OUTPUTS = ["logits", "probabilities"]
OPSET = 17  # onnxruntime has run every opset up to 17 since 1.12
Runner = Callable[[torch.Tensor], list[np.ndarray]]  # uint8 pixels -> [logits, probabilities]


class Preprocessed(nn.Module):
    """uint8 pixels (N, C, H, W) -> (logits, probabilities): resize, normalise, classify."""

    def __init__(self, net: nn.Module, scale: torch.Tensor, shift: torch.Tensor, size: int):
        super().__init__()
        self.net = net
        self.register_buffer("scale", scale.float().reshape(1, -1, 1, 1))
        self.register_buffer("shift", shift.float().reshape(1, -1, 1, 1))
        self.size = size

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = (self.size, self.size)
        x = F.interpolate(pixels.float(), size=size, mode="bilinear", align_corners=False)
        logits = self.net(x * self.scale + self.shift)  # ImageData.normalize
        return logits, logits.softmax(1)


def exportable(trainer: Trainer, run_dir: Path) -> Preprocessed:
    """A float32 CPU copy of the run's classifier, in the standard layout, behind its scaling."""
    task = trainer.task
    data = trainer.data
    if (
        not isinstance(task, Classification)
        or isinstance(task, CharLanguageModel)
        or not isinstance(data, ImageData)
    ):
        raise DlpyError(
            f"dlpy export: exports classifiers of images; {run_dir} trained "
            f"{type(task).__name__} on {type(data).__name__}"
        )
    net = copy.deepcopy(task.net).float().cpu().eval()
    net = net.to(memory_format=torch.contiguous_format)  # a channels_last run trains in NHWC
    # eval() on the whole: the ONNX exporter puts back the mode the outer module had
    return Preprocessed(net, data.scale.cpu(), data.shift.cpu(), data.test.x.shape[-1]).eval()


def metadata(cfg: DictConfig, data: ImageData) -> dict[str, str]:
    """What travels in the file: class names (JSON), the run's config (YAML), the input."""
    _, channels, size, _ = data.test.x.shape
    return {
        "classes": json.dumps(class_names(data)),
        "config": OmegaConf.to_yaml(cfg, resolve=True),
        "input": (
            f"pixels: uint8 (N, {channels}, H, W), values 0-255; resized in the graph to "
            f"{size}x{size}; outputs: logits and probabilities (N, {len(data.classes)})"
        ),
    }


def onnx_modules() -> tuple:
    """onnx and onnxruntime, or a line saying how to install them."""
    try:
        # optional (the `export` extra): only format=onnx needs them, and they take a while
        import onnx
        import onnxruntime
    except ImportError as err:
        raise DlpyError(
            f"format=onnx needs onnx and onnxruntime ({err}): pip install 'dlpy[export]'"
        ) from None
    return onnx, onnxruntime


def write_onnx(model: Preprocessed, path: Path, example: torch.Tensor, meta: dict) -> None:
    """The graph, exported by tracing, with any batch size and image size, and its metadata."""
    onnx, _ = onnx_modules()
    traced = path.with_name(path.name + ".tmp")
    dynamic = {"pixels": {0: "batch", 2: "height", 3: "width"}}
    with warnings.catch_warnings():
        # The tracing exporter is deprecated in favour of dynamo=True, which needs onnxscript
        # besides onnx; it exports these feed-forward networks exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(traced),
            dynamo=False,
            input_names=["pixels"],
            output_names=OUTPUTS,
            dynamic_axes=dynamic | {name: {0: "batch"} for name in OUTPUTS},
            opset_version=OPSET,
        )
    proto = onnx.load(str(traced))
    traced.unlink()
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value
    onnx.checker.check_model(proto)
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))


def write_torchscript(model: Preprocessed, path: Path, example: torch.Tensor, meta: dict) -> None:
    """The traced module, its metadata as extra files: classes.json, config.yaml, input.txt."""
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    extra = {
        "classes.json": meta["classes"],
        "config.yaml": meta["config"],
        "input.txt": meta["input"],
    }
    atomic_write(path, lambda f: torch.jit.save(traced, f, _extra_files=extra))


def onnx_runner(path: Path) -> Runner:
    """The file in an onnxruntime session, as a user would run it."""
    _, onnxruntime = onnx_modules()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda pixels: session.run(OUTPUTS, {"pixels": pixels.numpy()})


def torchscript_runner(path: Path) -> Runner:
    """The file loaded by torch.jit.load, as a user would run it."""
    module = torch.jit.load(str(path), map_location="cpu")

    def run(pixels: torch.Tensor) -> list[np.ndarray]:
        with torch.inference_mode():
            return [output.numpy() for output in module(pixels)]

    return run


WRITERS = {"onnx": write_onnx, "torchscript": write_torchscript}
RUNNERS = {"onnx": onnx_runner, "torchscript": torchscript_runner}


def compare(model: Preprocessed, run: Runner, data: ImageData) -> dict[str, float]:
    """The export against PyTorch on the test split: largest differences, argmax agreement."""
    pixels = data.test.x.cpu()
    labels = data.test.y.cpu()
    diffs = {name: 0.0 for name in OUTPUTS}
    agree = 0
    correct = {"export": 0, "pytorch": 0}
    batch = data.eval_batch_size
    for x, y in zip(pixels.split(batch), labels.split(batch), strict=True):
        with torch.inference_mode():
            expected = model(x)
        got = [torch.from_numpy(np.asarray(output)) for output in run(x)]
        for name, a, b in zip(OUTPUTS, got, expected, strict=True):
            diffs[name] = max(diffs[name], float((a - b).abs().max()))
        agree += int((got[0].argmax(1) == expected[0].argmax(1)).sum())
        correct["export"] += int((got[0].argmax(1) == y).sum())
        correct["pytorch"] += int((expected[0].argmax(1) == y).sum())
    n = len(labels)
    return {
        "test_images": n,
        "argmax_agreement": agree / n,
        "max_abs_diff_logits": diffs["logits"],
        "max_abs_diff_probabilities": diffs["probabilities"],
        "test/acc": correct["export"] / n,
        "test/acc_pytorch": correct["pytorch"] / n,
    }


def record(path: Path, fmt: str, entry: dict) -> None:
    """export.json: one entry per format exported into the folder, the newest of each."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        entries = {}  # a damaged record is rewritten: the exports themselves are the files
    save_json({**entries, fmt: entry}, path)


def summary(path: Path, result: dict[str, float]) -> str:
    """The check of one export on one line."""
    return (
        f"{path}: on {result['test_images']} test images, argmax agrees on "
        f"{result['argmax_agreement']:.2%}; largest |difference|: "
        f"{result['max_abs_diff_logits']:.2g} (logits), "
        f"{result['max_abs_diff_probabilities']:.2g} (probabilities); "
        f"test accuracy {result['test/acc']:.4f} (PyTorch {result['test/acc_pytorch']:.4f})"
    )


def export_command(args: list[str]) -> None:
    """The run's best checkpoint as <run dir>/export/model.onnx or model.torchscript, checked."""
    own, rest = own_options(args, ("format",))
    formats = own.get("format", "onnx").split(",")
    for fmt in formats:
        check_choice("format", fmt, FILES)
    run_dir, cfg, trainer = load_run(rest, USAGE)
    model = exportable(trainer, run_dir)
    meta = metadata(cfg, trainer.data)
    folder = run_dir / "export"
    folder.mkdir(exist_ok=True)
    example = trainer.data.test.x[:2].cpu()
    for fmt in formats:
        path = folder / FILES[fmt]
        WRITERS[fmt](model, path, example, meta)
        result = compare(model, RUNNERS[fmt](path), trainer.data)
        record(folder / "export.json", fmt, {"file": path.name, "input": meta["input"], **result})
        print(summary(path, result))
