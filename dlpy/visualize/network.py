"""A frozen convnet read through forward hooks: its layers, their outputs, its pixel scaling.

A layer is any named module whose output is a 4-D feature map (`features.2`). The network needs
no change: one probe forward pass lists the layers, and a hook that has every output it needs
stops the pass there.
"""

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError
from dlpy.models import ACTIVATIONS
from dlpy.tasks.autoencoder import Reconstruction
from dlpy.tasks.classification import Classification

if TYPE_CHECKING:  # only for the type hint: the CLI has imported the trainer by then
    from dlpy.trainer import Trainer

Pixels = Callable[[torch.Tensor], torch.Tensor]  # uint8 pixels -> network inputs, or back

# The tasks whose `net` maps a batch of images to an output (a GAN's maps noise to images).
IMAGE_TASKS = (Classification, Reconstruction)

# Activations that can work in place: torchvision's ReLU(inplace=True) would overwrite a
# captured conv output. ReLU6 is a Hardtanh; dropout in eval mode leaves its input untouched.
IN_PLACE = (
    nn.ReLU,
    nn.Hardtanh,
    nn.LeakyReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.RReLU,
    nn.Threshold,
)


class AllCaptured(Exception):
    """Raised by a forward hook once every wanted output is in: the rest of the net never runs."""


class Network:
    """A frozen convnet with its pixel scaling: `normalize` maps uint8 pixels to its inputs.

    `to_uint8` maps inputs back to pixels. `size` is the side of the images it was trained on,
    `canvas` the default side of the pictures DeepDream and style transfer paint, and `presets`
    the layers and loss weights those two use.
    """

    def __init__(
        self,
        net: nn.Module,
        normalize: Pixels,
        to_uint8: Pixels,
        channels: int,
        size: int,
        canvas: int,
        presets: dict | None = None,
        classes: list[str] | None = None,
    ) -> None:
        for module in net.modules():
            if isinstance(module, IN_PLACE):
                module.inplace = False
        self.net = net.eval().requires_grad_(False)
        self.normalize = normalize
        self.to_uint8 = to_uint8
        self.channels = channels
        self.size = size
        self.canvas = canvas
        self.classes = classes
        self._presets = presets
        self._layers = None
        self.device = next(net.parameters()).device

    @classmethod
    def of_run(cls, trainer: "Trainer") -> "Network":
        """The network of a dlpy run, with its data's pixel scaling.

        A classifier also brings its class names.
        """
        task = trainer.task
        data = trainer.data
        if not isinstance(task, IMAGE_TASKS) or not isinstance(data, ImageData):
            raise DlpyError(
                f"dlpy visualize: needs a network trained on images; this run trained "
                f"{type(task).__name__} on {type(data).__name__}"
            )
        _, channels, size, _ = data.test.x.shape
        return cls(
            task.net,
            data.normalize,
            data.to_uint8,
            channels,
            size,
            canvas=4 * size,
            classes=data.classes if isinstance(task, Classification) else None,
        )

    def run(
        self, x: torch.Tensor, names: Iterable[str], logits: bool = False, inputs: bool = False
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """({name: output} of the named modules for input x, the network's output or None).

        With inputs=True a module's input is kept instead of its output. Without the network's
        output (logits=False) the forward pass stops at the last named layer: the layers past it
        cost nothing, and a classifier's fixed-size head never sees a picture of another size.
        """
        modules = dict(self.net.named_modules())
        names = list(dict.fromkeys(names))
        outputs = {}

        def keep(name):
            def hook(module, args, output):
                outputs[name] = args[0] if inputs else output
                if not logits and len(outputs) == len(names):
                    raise AllCaptured

            return hook

        handles = [modules[name].register_forward_hook(keep(name)) for name in names]
        try:
            result = self.net(x)
        except AllCaptured:
            result = None
        finally:
            for handle in handles:
                handle.remove()
        return outputs, result

    def layers(self) -> list[str]:
        """Every named module with a 4-D output, in the order the forward pass finishes them."""
        if self._layers is None:
            self._layers = self._probe_layers()
        return self._layers

    def _probe_layers(self) -> list[str]:
        """One forward pass of a grey image, each module's hook noting a 4-D output."""
        order = []

        def note(name):
            def hook(module, args, output):
                if torch.is_tensor(output) and output.ndim == 4:
                    order.append(name)

            return hook

        handles = [
            module.register_forward_hook(note(name))
            for name, module in self.net.named_modules()
            if name
        ]
        grey = torch.full((1, self.channels, self.size, self.size), 128, device=self.device)
        try:
            with torch.no_grad():
                self.net(self.normalize(grey))
        finally:
            for handle in handles:
                handle.remove()
        return list(dict.fromkeys(order))  # a module called twice is listed once

    def conv_layers(self) -> list[str]:
        """Each convolution with the normalisation and activation right behind it, as one layer;
        a separable convolution's depthwise and pointwise halves are one layer too.

        Keras's Conv2D(activation="relu") and SeparableConv2D are one layer each; the block is
        named by its last module, whose output is what the book shows.
        """
        modules = dict(self.net.named_modules())
        blocks = []
        last = None
        for name in self.layers():
            module = modules[name]
            if next(module.children(), None) is not None:
                continue  # a container: its parts are listed themselves
            follows = blocks and last == blocks[-1]
            parent = modules.get(name.rpartition(".")[0])
            if isinstance(module, nn.Conv2d) and not (follows and pointwise(parent, module)):
                blocks.append(name)
            elif follows and isinstance(module, (nn.Conv2d, *NORMS, *ACTIVATIONS.values())):
                blocks[-1] = name
            last = name
        if not blocks:
            raise DlpyError(
                f"dlpy visualize: {type(self.net).__name__} has no convolution layers; "
                "visualize needs a convnet (model=cnn, resnet, ...)"
            )
        return blocks

    @property
    def presets(self) -> dict:
        """Defaults of DeepDream and style transfer.

        A dlpy convnet dreams with the deeper half of its conv layers (the book takes Inception's
        middle-to-high blocks), keeps the content of its last and the style of all. The weights
        were chosen by eye on the Fashion-MNIST CNN, where the style losses start about 1e4 times
        smaller.
        """
        if self._presets is None:
            convs = self.conv_layers()
            self._presets = {
                "dream": dict.fromkeys(convs[len(convs) // 2 :], 1.0),
                "content": convs[-1],
                "style": convs,
                "weights": {"content_weight": 1.0, "style_weight": 3e4, "tv_weight": 1.0},
            }
        return self._presets

    def chosen(
        self, layer: str | None, default: Iterable[str] | dict[str, float], key: str = "layer"
    ) -> dict[str, float]:
        """`layer=a,b` as {name: weight} (None: the default); `a:1.5` weights a layer.

        The weights are DeepDream's coefficients; the other kinds take the names alone.
        """
        if layer is None:
            return dict(default) if isinstance(default, dict) else dict.fromkeys(default, 1.0)
        weights = {}
        for item in layer.split(","):
            name, _, weight = item.partition(":")
            if name not in self.layers():
                raise DlpyError(
                    f"{key}={name}: no such layer with feature maps; the layers, in forward "
                    "order: " + ", ".join(self.layers())
                )
            try:
                weights[name] = float(weight or 1.0)
            except ValueError:
                raise DlpyError(f"{key}={item}: the weight after ':' must be a number") from None
        return weights


# the normalisation layers a conv block may hold (dlpy/models/convs.py builds these)
NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)


def pointwise(parent: nn.Module | None, module: nn.Conv2d) -> bool:
    """Whether `module` is the 1x1 half of a separable convolution: the second of a pair of
    convolutions, depthwise then pointwise (dlpy/models/convs.py)."""
    pair = list(parent.children()) if parent is not None else []
    separable = len(pair) == 2 and all(isinstance(m, nn.Conv2d) for m in pair)
    depthwise = separable and pair[0].groups == pair[0].in_channels
    return depthwise and pair[1] is module and module.kernel_size == (1, 1)
