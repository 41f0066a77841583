"""Painting with a network: DeepDream and neural style transfer.

Chollet, "Deep Learning with Python" (2nd ed.), 12.2 and 12.3; the style transfer is that of
Gatys, Ecker and Bethge, "A Neural Algorithm of Artistic Style" (2015).
"""

from collections.abc import Callable
from typing import Annotated, Literal

import torch

from dlpy.data.vision import ImageData
from dlpy.errors import check_choice
from dlpy.schema import NonNegative, Positive, Range
from dlpy.visualize.network import Network
from dlpy.visualize.pictures import Side, Steps, climb, inner, load_picture, picture, resize

Loss = Callable[[torch.Tensor], torch.Tensor]  # network input -> a scalar to descend or climb
SOLVERS = ("lbfgs", "adam")
# The book's 3 octaves, 1.4 apart, shrink the picture to half; 10 shrink it 1.4^9 = 21 times, to
# a few pixels of most pictures.
Octaves = Annotated[int, Range(ge=1, le=10)]


def deepdream(
    network: Network,
    data: ImageData | None,
    *,
    image: str | None = None,
    layer: str | None = None,
    steps: Steps = 20,
    lr: Positive = 0.05,
    octaves: Octaves = 3,
    octave_scale: Annotated[float, Range(ge=1)] = 1.4,  # below 1 the octaves would grow
    size: Side | None = None,
) -> dict[str, torch.Tensor]:
    """DeepDream (Chollet 12.2): gradient ascent on a picture, octave by octave.

    Each octave raises the mean squared activation of some layers, from small to full size, and
    afterwards puts back the detail that shrinking the picture lost.
    """
    weights = network.chosen(layer, network.presets["dream"])
    original = network.normalize(load_picture(image, network, size or network.canvas, "image"))

    def loss(x):
        outputs, _ = network.run(x, weights)
        return sum(w * inner(outputs[name]).pow(2).mean() for name, w in weights.items())

    shapes = [
        tuple(round(s / octave_scale**i) for s in original.shape[-2:])
        for i in reversed(range(octaves))
    ]
    shrunk = resize(original, shapes[0])
    x = shrunk
    with torch.enable_grad():
        for shape in shapes:
            x = climb(resize(x, shape), loss, steps, lr)
            # the detail lost by shrinking, put back
            x = x + resize(original, shape) - resize(shrunk, shape)
            shrunk = resize(original, shape)
    return {"deepdream": picture(network, x)}


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (C, H, W) feature maps: the inner product of every pair of channels."""
    flat = features.flatten(1)
    return flat @ flat.T


def content_loss(base: torch.Tensor, combination: torch.Tensor) -> torch.Tensor:
    """Chollet 12.3: the sum of squared differences of the content layer's feature maps."""
    return (combination - base).pow(2).sum()


def style_loss(
    style: torch.Tensor, combination: torch.Tensor, channels: int, size: int
) -> torch.Tensor:
    """Sum of squared Gram differences / (4 channels^2 size^2): Gatys et al., 2015, eq. 4.

    As in Chollet 12.3, `channels` and `size` are those of the image, not of the layer.
    """
    return (gram(style) - gram(combination)).pow(2).sum() / (4.0 * channels**2 * size**2)


def total_variation_loss(x: torch.Tensor) -> torch.Tensor:
    """Chollet 12.3: the sum over pixels of (dx^2 + dy^2)^1.25; it keeps the picture coherent."""
    a = (x[..., :-1, :-1] - x[..., 1:, :-1]).pow(2)
    b = (x[..., :-1, :-1] - x[..., :-1, 1:]).pow(2)
    return (a + b).pow(1.25).sum()


def style_transfer(
    network: Network,
    data: ImageData | None,
    *,
    image: str | None = None,
    style: str | None = None,
    content_layer: str | None = None,
    layer: str | None = None,
    content_weight: NonNegative | None = None,
    style_weight: NonNegative | None = None,
    tv_weight: NonNegative | None = None,
    solver: Literal[SOLVERS] = "lbfgs",
    steps: Steps = 200,
    lr: Positive = 0.05,
    size: Side | None = None,
) -> dict[str, torch.Tensor]:
    """Neural style transfer (Gatys et al., 2015; Chollet 12.3), from the content picture.

    It finds the picture whose deep features match the content's and whose Gram matrices match
    the style's on several layers.
    """
    check_choice("solver", solver, SOLVERS)
    presets = network.presets
    content = network.chosen(content_layer, [presets["content"]], "content_layer")
    content_name = next(iter(content))
    style_names = list(network.chosen(layer, presets["style"]))
    given = {"content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight}
    weights = {k: presets["weights"][k] if v is None else v for k, v in given.items()}
    side = size or network.canvas
    base = network.normalize(load_picture(image, network, side, "image"))
    style_image = network.normalize(load_picture(style, network, side, "style"))
    # the book scales the style picture to the content's size
    style_image = resize(style_image, base.shape[-2:])
    loss = transfer_loss(network, base, style_image, content_name, style_names, weights)
    return {"style_transfer": picture(network, paint(base, loss, solver, steps, lr))}


def transfer_loss(
    network: Network,
    base: torch.Tensor,
    style_image: torch.Tensor,
    content_name: str,
    style_names: list[str],
    weights: dict[str, float],
) -> Loss:
    """The weighted sum of the content loss, the style losses and the total variation loss.

    The style weight is shared out among the style layers (Gatys et al., 2015, eq. 5 and 7).
    """
    with torch.no_grad():
        content_target = network.run(base, [content_name])[0][content_name][0]
        style_targets = network.run(style_image, style_names)[0]
    channels = base.shape[1]
    pixels = base.shape[-2] * base.shape[-1]
    per_style_layer = weights["style_weight"] / len(style_names)

    def loss(x):
        features, _ = network.run(x, [content_name, *style_names])
        content = content_loss(content_target, features[content_name][0])
        total = weights["content_weight"] * content
        for name in style_names:
            style = style_loss(style_targets[name][0], features[name][0], channels, pixels)
            total = total + per_style_layer * style
        return total + weights["tv_weight"] * total_variation_loss(x)

    return loss


def paint(base: torch.Tensor, loss: Loss, solver: str, steps: int, lr: float) -> torch.Tensor:
    """The picture that minimises `loss`, from `base`, by L-BFGS (the book's) or Adam."""
    x = base.clone().requires_grad_(True)
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

        # one L-BFGS call runs up to `steps` iterations itself
        for _ in range(1 if solver == "lbfgs" else steps):
            optimizer.step(closure)
    return x
