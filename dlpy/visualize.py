"""Seeing inside a convnet: activations, filter patterns, Grad-CAM, DeepDream and neural style transfer.

The visualisations of "Deep Learning with Python" (Chollet, 2nd ed.: 9.4 for the first three,
12.2 DeepDream, 12.3 style transfer), on a dlpy checkpoint or on torchvision's ImageNet VGG and
Inception. A layer is any named module whose output is a 4-D feature map (`features.2`); each kind
returns {file stem: uint8 (3, H, W) image}, which `dlpy visualize` writes as PNGs and into
TensorBoard.
"""

import inspect
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlpy.errors import DlpyError
from dlpy.io import weights_only
from dlpy.models import ACTIVATIONS
from dlpy.plots import grid, labelled_grid


class _AllCaptured(Exception):
    """Raised by a forward hook once every wanted output is in, so the rest of the network never runs."""


class Network:
    """A frozen convnet with its pixel scaling: `normalize` maps uint8 pixels to its inputs, `to_uint8` back.

    `size` is the side of the images it was trained on, `canvas` the default side of the pictures
    DeepDream and style transfer paint, and `presets` the layers and loss weights those two use.
    """

    def __init__(
        self, net, normalize, to_uint8, channels, size, canvas, presets=None, classes=None
    ):
        for module in net.modules():
            if hasattr(
                module, "inplace"
            ):  # torchvision's ReLU(inplace=True) would overwrite a captured conv output
                module.inplace = False
        self.net = net.eval().requires_grad_(False)
        self.normalize, self.to_uint8, self.channels, self.size = (
            normalize,
            to_uint8,
            channels,
            size,
        )
        self.canvas, self.classes, self._presets, self._layers = canvas, classes, presets, None
        self.device = next(net.parameters()).device

    @classmethod
    def of_run(cls, trainer):
        """The network of a dlpy run, with its data's pixel scaling (a classifier also brings its class names)."""
        from dlpy.tasks.classification import Classification

        task, data = trainer.task, trainer.data
        if not hasattr(task, "net") or not hasattr(data, "to_uint8"):
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

    def run(self, x, names, logits=False, inputs=False):
        """{name: output} of the named modules for input x (their input, with inputs=True), and the network's
        output if asked (else None).

        Without the output the forward pass stops at the last named layer: the layers past it cost
        nothing, and a classifier's fixed-size head never sees a picture of another size.
        """
        modules, names, outputs = dict(self.net.named_modules()), list(dict.fromkeys(names)), {}

        def keep(name):
            def hook(module, args, output):
                outputs[name] = args[0] if inputs else output
                if not logits and len(outputs) == len(names):
                    raise _AllCaptured

            return hook

        handles = [modules[name].register_forward_hook(keep(name)) for name in names]
        try:
            result = self.net(x)
        except _AllCaptured:
            result = None
        finally:
            for handle in handles:
                handle.remove()
        return outputs, result

    def layers(self):
        """Every named module with a 4-D output, in the order the forward pass finishes them."""
        if self._layers is None:
            order = []
            hooks = [
                module.register_forward_hook(
                    lambda m, i, out, name=name: (
                        order.append(name) if torch.is_tensor(out) and out.ndim == 4 else None
                    )
                )
                for name, module in self.net.named_modules()
                if name
            ]
            try:
                with torch.no_grad():
                    self.net(
                        self.normalize(
                            torch.full(
                                (1, self.channels, self.size, self.size), 128, device=self.device
                            )
                        )
                    )
            finally:
                for hook in hooks:
                    hook.remove()
            self._layers = list(dict.fromkeys(order))
        return self._layers

    def conv_layers(self):
        """Each convolution with the batch norm and activation modules right behind it, as one layer (as Keras's
        Conv2D(activation="relu") is), named by the last of them: its output is what the book shows."""
        modules, blocks, last = dict(self.net.named_modules()), [], None
        for name in self.layers():
            module = modules[name]
            if next(module.children(), None) is not None:
                continue  # a container: its parts are listed themselves
            if isinstance(module, nn.Conv2d):
                blocks.append(name)
            elif (
                blocks
                and last == blocks[-1]
                and isinstance(module, (nn.BatchNorm2d, *ACTIVATIONS.values()))
            ):
                blocks[-1] = name
            last = name
        if not blocks:
            raise DlpyError(
                f"dlpy visualize: {type(self.net).__name__} has no convolution layers; "
                "visualize needs a convnet (model=cnn, resnet, ...)"
            )
        return blocks

    @property
    def presets(self):
        """Defaults of DeepDream and style transfer. A dlpy convnet dreams with its deeper half of conv layers (the
        book takes Inception's middle-to-high blocks), keeps the content of its last and the style of all; the
        weights were chosen by eye on the Fashion-MNIST CNN, where the style losses start about 1e4 times smaller."""
        if self._presets is None:
            convs = self.conv_layers()
            self._presets = {
                "dream": dict.fromkeys(convs[len(convs) // 2 :], 1.0),
                "content": convs[-1],
                "style": convs,
                "weights": {"content_weight": 1.0, "style_weight": 3e4, "tv_weight": 1.0},
            }
        return self._presets

    def chosen(self, layer, default, key="layer"):
        """`layer=a,b` (None: the default) as {name: weight}; `a:1.5` weights a layer (DeepDream's coefficients)."""
        if layer is None:
            return dict(default) if isinstance(default, dict) else dict.fromkeys(default, 1.0)
        weights = {}
        for item in layer.split(","):
            name, _, weight = item.partition(":")
            if name not in self.layers():
                raise DlpyError(
                    f"{key}={name}: no such layer with feature maps; the layers, in forward order: "
                    + ", ".join(self.layers())
                )
            try:
                weights[name] = float(weight or 1.0)
            except ValueError:
                raise DlpyError(f"{key}={item}: the weight after ':' must be a number") from None
        return weights


# -- torchvision's ImageNet networks -----------------------------------------------------------------

# The book's layers under their torchvision names: its VGG19 style layers block1_conv1 ... block5_conv1 and content
# layer block5_conv2 are the ReLUs after those convolutions in `features`, and its DeepDream layers, Inception's
# "mixed4" ... "mixed7", are torchvision's Mixed_6b ... 6e. The book dreams only with Inception and paints only
# with VGG: VGG dreams with the last ReLUs of blocks 4 and 5, and Inception paints with its stem and first block.
PRETRAINED = {
    "vgg16": {
        "dream": {"features.22": 1.0, "features.29": 1.5},
        "content": "features.27",
        "style": ["features.1", "features.6", "features.11", "features.18", "features.25"],
    },
    "vgg19": {
        "dream": {"features.26": 1.0, "features.35": 1.5},
        "content": "features.31",
        "style": ["features.1", "features.6", "features.11", "features.20", "features.29"],
    },
    "inception_v3": {
        "dream": {"Mixed_6b": 1.0, "Mixed_6c": 1.5, "Mixed_6d": 2.0, "Mixed_6e": 2.5},
        "content": "Mixed_6e",
        "style": ["Conv2d_1a_3x3", "Conv2d_2b_3x3", "Conv2d_4a_3x3", "Mixed_5b"],
    },
}
BOOK_WEIGHTS = {"content_weight": 2.5e-8, "style_weight": 1e-6, "tv_weight": 1e-6}  # Chollet 12.3


def pretrained(name, device):
    """torchvision's ImageNet weights, from torch's hub cache or downloaded there (torchvision's own code)."""
    from torchvision import models

    if name not in PRETRAINED:
        raise DlpyError(f"weights={name}: unknown; known: {', '.join(PRETRAINED)}")
    weights = models.get_model_weights(name).DEFAULT
    try:
        with weights_only():  # a file put in the hub cache by hand must not run code
            net = models.get_model(name, weights=weights)
    except (
        OSError,
        RuntimeError,
        pickle.UnpicklingError,
    ) as err:  # offline (URLError is an OSError), a cut file
        where = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise DlpyError(
            f"weights={name}: cannot load {weights} ({reason}); without a network, download "
            f"{weights.url} elsewhere and put it at {where}"
        ) from None
    preprocess = weights.transforms()
    mean, std = (
        torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (preprocess.mean, preprocess.std)
    )
    return Network(
        net.to(device),
        lambda x: (x.float() / 255 - mean) / std,
        lambda x: ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8),
        channels=3,
        size=preprocess.crop_size[0],
        canvas=400,
        presets={**PRETRAINED[name], "weights": BOOK_WEIGHTS},
    )


# -- pictures in and out -----------------------------------------------------------------------------


def held_out_images(data, index, n):
    """uint8 test images index .. index+n-1 with their labels."""
    if not 0 <= index < len(data.test):
        raise DlpyError(f"index={index}: the test split has images 0 .. {len(data.test) - 1}")
    return data.test.x[index : index + n], data.test.y[index : index + n]


def load_picture(path, network, size, key):
    """An image file as uint8 (1, C, H, W) pixels in the network's colours, its longer side `size` pixels."""
    from PIL import Image, UnidentifiedImageError

    if path is None:
        raise DlpyError(f"{key}=<image file> is required")
    try:
        with Image.open(Path(path).expanduser()) as image:
            image = image.convert("L" if network.channels == 1 else "RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DlpyError(f"{key}={path}: cannot read it as an image ({err})") from None
    scale = size / max(image.size)
    image = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC
    )
    pixels = torch.from_numpy(np.array(image)).view(image.height, image.width, network.channels)
    return pixels.permute(2, 0, 1)[None].contiguous().to(network.device)


def visible(x, contrast=64):
    """Float (N, C, H, W) -> uint8, each image standardised and spread around mid-grey (Chollet 9.4's display)."""
    mean, std = x.mean((1, 2, 3), keepdim=True), x.std((1, 2, 3), keepdim=True, unbiased=False)
    return ((x - mean) / (std + 1e-5) * contrast + 128).clamp(0, 255).to(torch.uint8)


def tiles(images, cell=56, columns=16):
    """uint8 (N, C, h, w) images, each scaled up by whole pixels to about `cell` wide, in one grid."""
    scale = max(1, cell // images.shape[-1])
    return grid(
        F.interpolate(images.float(), scale_factor=scale, mode="nearest").to(torch.uint8), columns
    )


def picture(network, x):
    """Network input (1, C, H, W) -> a uint8 (3, H, W) picture."""
    return network.to_uint8(x.detach())[0].expand(3, -1, -1).contiguous()


def jet(v):
    """Values in [0, 1] -> the 'jet' colour map, blue through green to red, as (N, 3, H, W) in [0, 1]."""
    return torch.stack([(1.5 - (4 * v - k).abs()).clamp(0, 1) for k in (3, 2, 1)], 1)


def resize(x, shape):
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)


def inner(maps):
    """Feature maps without their 2-pixel border, where padding makes artefacts (Chollet 9.4.2, 12.2); small maps whole."""
    return maps[..., 2:-2, 2:-2] if min(maps.shape[-2:]) > 8 else maps


def climb(x, objective, steps, lr):
    """Gradient ascent on the input; each image's gradient scaled to unit RMS first, so every image climbs at
    the same pace whatever the size of its gradient (as Chollet 1st ed. 5.4.2 scales it for filter patterns)."""
    x = x.detach()
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x).sum(), x)
        rms = grad.pow(2).mean((1, 2, 3), keepdim=True).sqrt()
        x = (x + lr * grad / (rms + 1e-8)).detach()
    return x


# -- the kinds ---------------------------------------------------------------------------------------


def activations(network, data, *, layer: str = None, index: int = 0):
    """The feature maps one test image produces in each conv layer, each map a grey image (Chollet 9.4.1)."""
    x, _ = held_out_images(data, index, 1)
    names = network.chosen(layer, network.conv_layers())
    with torch.no_grad():
        maps, _ = network.run(network.normalize(x), names)
    images = {"activations_input": tiles(x, cell=112, columns=1)}
    for name in names:
        images[f"activations_{name}"] = tiles(visible(maps[name][0][:, None].float()))
    return images


def filter_patterns(network, layer, steps=30, lr=0.1, seed=0):
    """For each filter of `layer`, the input that maximises its mean activation, by gradient ascent from faint
    noise (Chollet 9.4.2): all filters at once, filter i on image i. -> (inputs, activations before, after)."""
    generator = torch.Generator(network.device).manual_seed(seed)
    blank = torch.zeros(1, network.channels, network.size, network.size, device=network.device)
    with torch.no_grad():
        n = network.run(blank, [layer])[0][layer].shape[1]
    # grey noise: pixels uniform in [0.4, 0.6] of the range, as the book starts
    noise = (
        0.4 + 0.2 * torch.rand(n, *blank.shape[1:], generator=generator, device=network.device)
    ) * 255
    filters = torch.arange(n, device=network.device)
    # A ReLU that is off everywhere on the noise passes no gradient back: climb on what enters the activation
    # instead, which raises the activation with it.
    before = isinstance(dict(network.net.named_modules())[layer], tuple(ACTIVATIONS.values()))

    def mean_activation(x, inputs=False):
        return inner(network.run(x, [layer], inputs=inputs)[0][layer][filters, filters]).mean(
            (1, 2)
        )

    start = network.normalize(noise)
    with torch.enable_grad():
        end = climb(start, lambda x: mean_activation(x, before), steps, lr)
    with torch.no_grad():
        return end, mean_activation(start), mean_activation(end)


def filters(network, data, *, layer: str = None, steps: int = 30, lr: float = 0.1):
    """The pattern each filter responds to most, one grid per conv layer (Chollet 9.4.2)."""
    images = {}
    for name in network.chosen(layer, network.conv_layers()):
        patterns, _, _ = filter_patterns(network, name, steps, lr)
        images[f"filters_{name}"] = tiles(visible(patterns))
    return images


def gradcam_maps(network, x, layer, target=None):
    """Grad-CAM (Selvaraju et al., 2017) of input batch x at `layer`: the feature maps weighted by the mean
    gradient of the class's score over each map (eq. 1), summed, ReLU'd (eq. 2), scaled up to the input and to
    [0, 1]. The class is each image's prediction, or `target`. -> (maps (N, H, W), predictions)

    The score is the class's logit, as in the paper; the book differentiates the softmax output instead
    (Chollet 9.4.3), whose gradient vanishes once the network is sure of a class.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(
            True
        )  # the weights are frozen: the graph must start at the input
        features, logits = network.run(x, [layer], logits=True)
        maps, pred = features[layer], logits.argmax(1)
        classes = pred if target is None else torch.full_like(pred, target)
        score = logits.gather(1, classes[:, None])
        (grads,) = torch.autograd.grad(score.sum(), maps)
    weights = grads.mean((2, 3), keepdim=True)  # alpha_k^c, eq. 1
    cam = F.relu((weights * maps).sum(1, keepdim=True)).detach()  # ReLU(sum_k alpha_k^c A^k), eq. 2
    cam = resize(cam, x.shape[-2:])[:, 0]
    return cam / cam.amax((1, 2), keepdim=True).clamp_min(1e-12), pred


def gradcam(network, data, *, layer: str = None, index: int = 0, n: int = 16, target: str = None):
    """Grad-CAM heatmaps over test images, captioned `predicted / true` (green when right), one grid per layer."""
    if network.classes is None:
        raise DlpyError(
            "kind=gradcam needs a classifier: this run's network does not predict classes"
        )
    if target is not None:
        names = {c.lower(): i for i, c in enumerate(network.classes)}
        if target.isdigit() and int(target) < len(network.classes):
            target = int(target)
        elif target.lower() in names:
            target = names[target.lower()]
        else:
            raise DlpyError(
                f"target={target}: not a class; give an index 0 .. {len(network.classes) - 1} or one of: "
                + ", ".join(network.classes)
            )
    pixels, labels = held_out_images(data, index, n)
    scale = max(1, 168 // pixels.shape[-1])  # room for the caption under each image
    big = F.interpolate(pixels.float(), scale_factor=scale, mode="nearest") / 255
    big = big.expand(-1, 3, -1, -1)
    images = {}
    for name in network.chosen(layer, network.conv_layers()[-1:]):
        cam, pred = gradcam_maps(network, network.normalize(pixels), name, target)
        overlay = 0.5 * big + 0.5 * jet(
            resize(cam[:, None], big.shape[-2:])[:, 0]
        )  # Chollet blends 0.4 heat
        captions = [
            f"{network.classes[p]} / {network.classes[y]}"
            for p, y in zip(pred.tolist(), labels.tolist(), strict=False)
        ]
        stem = f"gradcam_{name}" if target is None else f"gradcam_{name}_class{target}"
        images[stem] = labelled_grid(
            (overlay * 255).round().to(torch.uint8),
            captions,
            (pred == labels).tolist(),
            cell=big.shape[-1],
        )
    return images


def deepdream(
    network,
    data,
    *,
    image: str = None,
    layer: str = None,
    steps: int = 20,
    lr: float = 0.05,
    octaves: int = 3,
    octave_scale: float = 1.4,
    size: int = None,
):
    """DeepDream (Chollet 12.2): gradient ascent on a picture to raise the mean squared activation of some layers,
    octave by octave from small to full size, putting back after each the detail that shrinking lost."""
    weights = network.chosen(layer, network.presets["dream"])
    original = network.normalize(load_picture(image, network, size or network.canvas, "image"))

    def loss(x):
        outputs, _ = network.run(x, weights)
        return sum(w * inner(outputs[name]).pow(2).mean() for name, w in weights.items())

    shapes = [
        tuple(round(s / octave_scale**i) for s in original.shape[-2:])
        for i in reversed(range(octaves))
    ]
    shrunk = x = resize(original, shapes[0])
    with torch.enable_grad():
        for shape in shapes:
            x = climb(resize(x, shape), loss, steps, lr)
            x = (
                x + resize(original, shape) - resize(shrunk, shape)
            )  # the detail lost by shrinking, put back
            shrunk = resize(original, shape)
    return {"deepdream": picture(network, x)}


def gram(features):
    """Gram matrix of (C, H, W) feature maps: the inner products of every pair of channels over all positions."""
    flat = features.flatten(1)
    return flat @ flat.T


def content_loss(base, combination):
    return (combination - base).pow(2).sum()


def style_loss(style, combination, channels, size):
    """Chollet 12.3 (after Gatys et al., 2015, eq. 4): sum of squared Gram differences / (4 channels^2 size^2),
    with `channels` and `size` those of the image, as the book has them."""
    return (gram(style) - gram(combination)).pow(2).sum() / (4.0 * channels**2 * size**2)


def total_variation_loss(x):
    """Chollet 12.3: sum over the pixels of (dx^2 + dy^2)^1.25, which keeps the picture locally coherent."""
    a = (x[..., :-1, :-1] - x[..., 1:, :-1]).pow(2)
    b = (x[..., :-1, :-1] - x[..., :-1, 1:]).pow(2)
    return (a + b).pow(1.25).sum()


def style_transfer(
    network,
    data,
    *,
    image: str = None,
    style: str = None,
    content_layer: str = None,
    layer: str = None,
    content_weight: float = None,
    style_weight: float = None,
    tv_weight: float = None,
    solver: str = "lbfgs",
    steps: int = 200,
    lr: float = 0.05,
    size: int = None,
):
    """Neural style transfer (Gatys et al., 2015; Chollet 12.3): from the content picture, find the picture whose
    deep features match the content's and whose Gram matrices match the style's on several layers."""
    presets = network.presets
    content_name = next(iter(network.chosen(content_layer, [presets["content"]], "content_layer")))
    style_names = list(network.chosen(layer, presets["style"]))
    given = {"content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight}
    w = {key: presets["weights"][key] if value is None else value for key, value in given.items()}
    base = network.normalize(load_picture(image, network, size or network.canvas, "image"))
    style_image = network.normalize(load_picture(style, network, size or network.canvas, "style"))
    style_image = resize(
        style_image, base.shape[-2:]
    )  # the book scales the style picture to the content's size
    with torch.no_grad():
        content_target = network.run(base, [content_name])[0][content_name][0]
        style_targets = network.run(style_image, style_names)[0]
    channels, pixels = base.shape[1], base.shape[-2] * base.shape[-1]

    def loss(x):
        features, _ = network.run(x, [content_name, *style_names])
        total = w["content_weight"] * content_loss(content_target, features[content_name][0])
        for name in style_names:
            total = total + w["style_weight"] / len(style_names) * style_loss(
                style_targets[name][0], features[name][0], channels, pixels
            )
        return total + w["tv_weight"] * total_variation_loss(x)

    x = base.clone().requires_grad_(True)
    if solver not in ("lbfgs", "adam"):
        raise DlpyError(f"solver={solver}: unknown; known: lbfgs, adam")
    with torch.enable_grad():
        if solver == "lbfgs":
            optimizer = torch.optim.LBFGS([x], max_iter=steps, line_search_fn="strong_wolfe")
        else:
            optimizer = torch.optim.Adam([x], lr=lr)

        def closure():
            optimizer.zero_grad()
            value = loss(x)
            value.backward()
            return value

        for _ in range(
            1 if solver == "lbfgs" else steps
        ):  # one L-BFGS call runs up to `steps` iterations itself
            optimizer.step(closure)
    return {"style_transfer": picture(network, x)}


KINDS = {
    "activations": activations,
    "filters": filters,
    "gradcam": gradcam,
    "deepdream": deepdream,
    "style_transfer": style_transfer,
}
PRETRAINED_KINDS = (
    "deepdream",
    "style_transfer",
)  # the kinds that also run on weights=<torchvision network>


def options(kind):
    """A kind's own options: the keyword parameters of its function, with their types."""
    params = list(inspect.signature(KINDS[kind]).parameters.values())[2:]
    return {p.name: p.annotation for p in params} | (
        {"weights": str} if kind in PRETRAINED_KINDS else {}
    )


def typed(kind, given):
    """`key=value` strings as the kind's keyword arguments; an option it does not take fails naming its options."""
    known, kwargs = options(kind), {}
    for key, value in given.items():
        if key not in known:
            raise DlpyError(
                f"{key}= does not apply to kind={kind}; its options: {', '.join(known)}"
            )
        try:
            kwargs[key] = known[key](value)
        except ValueError:
            kind_of_value = {int: "a whole number", float: "a number"}[known[key]]
            raise DlpyError(f"{key}= takes {kind_of_value}, got {value!r}") from None
    return kwargs
