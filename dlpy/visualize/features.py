"""What each conv layer responds to: the feature maps of one image, and each filter's pattern.

Chollet, "Deep Learning with Python" (2nd ed.), 9.4.1 and 9.4.2.
"""

import torch

from dlpy.data.vision import ImageData
from dlpy.models import ACTIVATIONS
from dlpy.schema import Count, Positive
from dlpy.visualize.network import Network
from dlpy.visualize.pictures import Steps, climb, held_out_images, inner, tiles, visible


def activations(
    network: Network, data: ImageData, *, layer: str | None = None, index: Count = 0
) -> dict[str, torch.Tensor]:
    """The feature maps one test image produces in each conv layer, each map a grey image."""
    x, _ = held_out_images(data, index, 1)
    names = network.chosen(layer, network.conv_layers())
    with torch.no_grad():
        maps, _ = network.run(network.normalize(x), names)
    images = {"activations_input": tiles(x, cell=112, columns=1)}
    for name in names:
        images[f"activations_{name}"] = tiles(visible(maps[name][0][:, None].float()))
    return images


def filter_patterns(
    network: Network, layer: str, steps: int = 30, lr: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each filter of `layer`, the input that maximises its mean activation.

    Gradient ascent from faint noise, all filters at once: filter i on image i.
    -> (inputs, mean activations before, after).
    """
    generator = torch.Generator(network.device).manual_seed(seed)
    blank = torch.zeros(1, network.channels, network.size, network.size, device=network.device)
    with torch.no_grad():
        n = network.run(blank, [layer])[0][layer].shape[1]
    # grey noise: pixels uniform in [0.4, 0.6] of the range, as the book starts
    uniform = torch.rand(n, *blank.shape[1:], generator=generator, device=network.device)
    noise = (0.4 + 0.2 * uniform) * 255
    filters = torch.arange(n, device=network.device)
    # A ReLU that is off everywhere on the noise passes no gradient back: climb on what enters
    # the activation instead, which raises the activation with it.
    before = isinstance(dict(network.net.named_modules())[layer], tuple(ACTIVATIONS.values()))

    def mean_activation(x, inputs=False):
        maps = network.run(x, [layer], inputs=inputs)[0][layer]
        return inner(maps[filters, filters]).mean((1, 2))

    start = network.normalize(noise)
    with torch.enable_grad():
        end = climb(start, lambda x: mean_activation(x, before), steps, lr)
    with torch.no_grad():
        return end, mean_activation(start), mean_activation(end)


def filters(
    network: Network,
    data: ImageData,
    *,
    layer: str | None = None,
    steps: Steps = 30,
    lr: Positive = 0.1,
) -> dict[str, torch.Tensor]:
    """The pattern each filter responds to most, one grid per conv layer."""
    images = {}
    for name in network.chosen(layer, network.conv_layers()):
        patterns, _, _ = filter_patterns(network, name, steps, lr)
        images[f"filters_{name}"] = tiles(visible(patterns))
    return images
