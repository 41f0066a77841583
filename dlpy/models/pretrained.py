"""A pretrained network with a new head: torchvision's ImageNet classifiers, or a dlpy run's net.

Transfer learning as Chollet runs it (Deep Learning with Python, 5.3: VGG16's convolutional base,
frozen, under a new classifier; then its last block fine-tuned) and as the TF2 course does (6.6:
a frozen ResNet50 under a new pooling and dense head). The body is the network with its last
`nn.Linear` (the 1000 ImageNet classes, or the run's classes) taken out: one rule that fits every
torchvision classifier and every dlpy classifier; the head is a new dense stack for the data's
classes.
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dlpy.errors import DlpyError, check_choice, check_number, first_line
from dlpy.io import load_checkpoint, resolve_checkpoint, torchvision_weights
from dlpy.models.layers import dense_layers
from dlpy.registry import MODELS
from dlpy.schema import Dropout, Positive, Real, Size

log = logging.getLogger(__name__)
MODES = ("feature_extraction", "fine_tune")
NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


class Inputs(nn.Module):
    """The data's normalised images as the weights expect them: the data's (x - mean) / std
    undone, grey repeated to three channels, resized, and normalised with the weights' mean and
    std (torchvision's `weights.transforms()`), all on the batch at once."""

    def __init__(
        self, data: tuple[list, list], weights: tuple[list, list], channels: int, size: int | None
    ) -> None:
        super().__init__()
        mean = torch.tensor(data[0]).view(1, -1, 1, 1)
        std = torch.tensor(data[1]).view(1, -1, 1, 1)
        to_mean = torch.tensor(weights[0]).view(1, -1, 1, 1)
        to_std = torch.tensor(weights[1]).view(1, -1, 1, 1)
        # one multiply-add: ((x * std + mean) - to_mean) / to_std; not saved in checkpoints
        self.register_buffer("scale", std / to_std, persistent=False)
        self.register_buffer("shift", (mean - to_mean) / to_std, persistent=False)
        self.channels = channels
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.channels:  # grey into a colour network: the same plane thrice
            x = x.expand(-1, self.channels, -1, -1)
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        return x * self.scale + self.shift


class Transfer(nn.Module):
    """`inputs` -> `body` (pretrained, frozen while the head learns) -> `head` (new)."""

    def __init__(self, inputs: Inputs, body: nn.Module, head: nn.Module, mode: str, unfreeze: Any):
        super().__init__()
        self.inputs = inputs
        self.body = body
        self.head = head
        self.mode = mode
        self.unfreeze = unfreeze
        self.learning: list[nn.Module] | None = []  # the body's blocks that learn; None: all

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.inputs(x))

    def blocks(self) -> list[nn.Module]:
        """The body's layers with weights, in order: its top-level children, each nn.Sequential
        among them (torchvision's `features`, `layer4`, `classifier`) opened one level; a norm
        layer goes with the layer before it."""
        blocks: list[list[nn.Module]] = []
        for child in self.body.children():
            parts = list(child.children()) if isinstance(child, nn.Sequential) else [child]
            for part in parts:
                if not any(p.numel() for p in part.parameters()):
                    continue
                if isinstance(part, NORMS) and blocks:
                    blocks[-1].append(part)
                else:
                    blocks.append([part])
        return [nn.ModuleList(group) for group in blocks]

    def freeze(self, phase: int) -> list[nn.Module]:
        """Phase 1: the whole body frozen. Phase 2 (fine_tune): the last `unfreeze` blocks (or
        all) learn too. Returns the blocks that learn."""
        blocks = self.blocks()
        learning = blocks[len(blocks) - self.unfreezing(len(blocks)) :] if phase == 2 else []
        self.learning = None if len(learning) == len(blocks) else learning
        for p in self.body.parameters():
            p.requires_grad_(False)
        for block in learning:
            block.requires_grad_(True)
        self.train(self.training)
        return learning

    def unfreezing(self, n: int) -> int:
        return n if self.unfreeze in (None, "all") else min(int(self.unfreeze), n)

    def train(self, mode: bool = True) -> "Transfer":
        """A frozen body stays in eval mode, but for the blocks that learn: its BatchNorm
        statistics stay the pretrained ones, its dropout off (Chollet 5.3's frozen conv_base;
        Keras's trainable=False)."""
        super().train(mode)
        if mode and self.learning is not None:
            self.body.eval()
            for block in self.learning:
                block.train()
        return self


def check_unfreeze(unfreeze: Any) -> None:
    whole = isinstance(unfreeze, int) and not isinstance(unfreeze, bool) and unfreeze >= 1
    if unfreeze not in (None, "all") and not whole:
        raise DlpyError(f"model.unfreeze must be all or a number of blocks >= 1, got {unfreeze!r}")


def cut_head(net: nn.Module) -> tuple[nn.Module, int]:
    """The network without its last nn.Linear (replaced by the identity), and that layer's input
    size: the features the new head reads."""
    linears = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise DlpyError(f"model.weights: {type(net).__name__} has no dense layer to replace")
    *path, last = linears[-1].split(".")
    parent = net.get_submodule(".".join(path))
    features = getattr(parent, last).in_features
    setattr(parent, last, nn.Identity())
    return net, features


def torchvision_model(arch: str) -> nn.Module:
    """torchvision's classifier `arch` (model.arch), untrained."""
    # heavy: kept off the start-up path (torchvision takes about 1.5 s to import)
    from torchvision import models

    check_choice("model.arch", arch, models.list_models(module=models))
    return models.get_model(arch, weights=None)


def imagenet(arch: str) -> tuple[nn.Module, tuple[list, list], int]:
    """torchvision's ImageNet network `arch`, its (mean, std) and input size, from torch's hub
    cache (or downloaded there); a pickle that would run code is refused."""
    # heavy: kept off the start-up path (torchvision takes about 1.5 s to import)
    from torchvision import models

    check_choice("model.arch", arch, models.list_models(module=models))
    net, preprocess = torchvision_weights(arch, "model.weights=imagenet")
    # The data sets already resize and centre-crop their images: the network sees crop_size.
    return net, (preprocess.mean, preprocess.std), preprocess.crop_size[0]


def from_run(path: str) -> tuple[nn.Module, tuple[list, list], int, int]:
    """The network of a dlpy run (its best.pt), its data's (mean, std), channels and size."""
    if not Path(path).expanduser().exists():
        raise DlpyError(
            f"model.weights={path}: neither imagenet, none, nor a dlpy run folder or checkpoint"
        )
    state = load_checkpoint(resolve_checkpoint(path, "best.pt"))
    config = state.get("config") or {}
    model = dict(config.get("model") or {})
    if "name" not in model:
        raise DlpyError(f"model.weights={path}: its checkpoint holds no model config")
    model.pop("task", None)
    name = model.pop("name")
    if name == "pretrained":  # a transfer run: its own weights below, not ImageNet's again
        model["weights"] = "none"
    net = MODELS.build(name, key=f"model.weights={path}", **model)
    prefix = "net."
    weights = {k[len(prefix) :]: v for k, v in state["task"].items() if k.startswith(prefix)}
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise DlpyError(f"model.weights={path}: {first_line(err)}") from None
    dataset = config.get("dataset", {})
    stats = (dataset.get("mean", [0.0]), dataset.get("std", [1.0]))
    return net, stats, model.get("in_channels", 3), model.get("image_size", 0)


@MODELS.register("pretrained")
def pretrained(
    in_channels: Size,
    image_size: Size,
    num_classes: Size,
    mean: list[Real],
    std: list[Positive],
    arch: str = "resnet18",
    weights: str = "imagenet",
    size: Size | None = None,
    mode: Literal[MODES] = "feature_extraction",
    unfreeze: Any = None,
    head: Sequence[Size] = (),
    dropout: Dropout = 0.0,
) -> nn.Module:
    """A pretrained body (torchvision ImageNet, or a dlpy run) under a new dense head."""
    check_choice("model.mode", mode, MODES)
    check_unfreeze(unfreeze)
    if size is not None:
        check_number("model.size", size, at_least=1, integer=True)
    if weights == "imagenet":
        net, stats, size_wanted = imagenet(arch)
        channels = 3
    elif weights == "none":  # the same architecture, untrained: a baseline
        net = torchvision_model(arch)
        stats = (mean, std)  # the data's own normalisation, unchanged
        channels = 3
        size_wanted = image_size
    else:
        net, stats, channels, size_wanted = from_run(weights)
        log.info("model.weights=%s: its network, not model.arch=%s, is the body", weights, arch)
    body, features = cut_head(net)
    sizes = [features, *head]
    # dropout before the last layer, as in Chollet 5.3's Dense(256) - Dropout(0.5) - Dense
    hidden = dense_layers(sizes, "relu", dropout) or [nn.Dropout(dropout)]
    new_head = nn.Sequential(*hidden, nn.Linear(sizes[-1], num_classes))
    inputs = Inputs((mean, std), stats, channels, size or size_wanted)
    transfer = Transfer(inputs, body, new_head, mode, unfreeze)
    transfer.freeze(1)
    return transfer
