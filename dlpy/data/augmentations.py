"""The augmentations `dataset.augment` can name, their options and how each is drawn.

Crops and flips index the whole batch at once. The others are torchvision's v2 transforms,
which draw one set of parameters per call, so `PerImage` calls them image by image, with torch's
global generator seeded from the data's own for the duration (v2 draws from the global one).
MixUp and CutMix (`Mixing`) act on whole batches. Options are v2's, with v2's defaults where it
has them; dlpy/data/augment.py checks them, by name, before a builder runs.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from dlpy.registry import Registry

AUGMENTATIONS = Registry("augmentation")


class Context(NamedTuple):
    """What a builder may need from the data set: the images' (height, width), the classes."""

    size: tuple[int, int]
    num_classes: int


class Batched:
    """A step that draws for every image of the batch at once, from the data's generator."""

    def __init__(self, fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor]) -> None:
        self.fn = fn

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.fn(x, generator)


class PerImage:
    """A v2 transform run on each image alone, so that each gets its own parameters."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        with seeded(generator), one_thread(x.device):
            return torch.stack([self.transform(image) for image in x])


class Mixing:
    """MixUp or CutMix: one v2 transform of a whole normalised batch and its labels."""

    def __init__(self, transform: Callable) -> None:
        self.transform = transform


Step = Batched | PerImage | Mixing


@contextmanager
def seeded(generator: torch.Generator) -> Iterator[None]:
    """Inside the block torch's global CPU generator, which v2 draws from, is seeded from a draw
    of `generator`; after it the global one is as it was, so dropout's stream is left alone."""
    seed = torch.randint(2**62, (1,), device=generator.device, generator=generator)
    with torch.random.fork_rng(devices=[]):  # CPU only: v2 draws its parameters on the CPU
        torch.default_generator.manual_seed(int(seed))
        yield


@contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """torch's CPU kernels on one thread inside the block: on one small image a thread pool costs
    more than it saves (rotating 128 28x28 images on 2 busy cores: 0.6-2 s with 2 threads, 42-65 ms
    with one)."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad by `padding` and take one random crop of the original size per image, all at once."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    top, left = torch.randint(0, 2 * padding + 1, (2, n, 1), device=x.device, generator=generator)
    rows = (top + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (left + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    return padded[
        torch.arange(n, device=x.device).view(n, 1, 1, 1),
        torch.arange(c, device=x.device).view(1, c, 1, 1),
        rows,
        cols,
    ]


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float, dim: int) -> torch.Tensor:
    """Each image mirrored along `dim` with probability `p`, drawn per image."""
    flip = torch.rand(len(x), device=x.device, generator=generator) < p
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(dim), x)


def v2() -> Any:
    # torchvision takes a second to import (design.md, "Start-up counts"): only when it is used
    from torchvision.transforms import v2

    return v2


# -- the augmentations ------------------------------------------------------------------------


@AUGMENTATIONS.register("crop")
def crop(context: Context, /, *, padding: int = 4) -> Step:
    """Zero-pad by `padding` pixels, cut a random window of the old size (He et al., 2016)."""
    return Batched(lambda x, generator: random_crop(x, padding, generator))


@AUGMENTATIONS.register("hflip")
def hflip(context: Context, /, *, p: float = 0.5) -> Step:
    """Mirror left to right, with probability p."""
    return Batched(partial(random_flip, p=p, dim=3))


@AUGMENTATIONS.register("vflip")
def vflip(context: Context, /, *, p: float = 0.5) -> Step:
    """Mirror top to bottom, with probability p."""
    return Batched(partial(random_flip, p=p, dim=2))


@AUGMENTATIONS.register("resized_crop")
def resized_crop(
    context: Context,
    /,
    *,
    scale: tuple = (0.08, 1.0),
    ratio: tuple = (3 / 4, 4 / 3),
    interpolation: str = "bilinear",
) -> Step:
    """A random part (area `scale`, aspect `ratio`) resized to the whole (Szegedy et al., 2015)."""
    transform = v2().RandomResizedCrop(
        context.size, scale=scale, ratio=ratio, interpolation=interpolation, antialias=True
    )
    return PerImage(transform)


@AUGMENTATIONS.register("rotation")
def rotation(
    context: Context, /, *, degrees: float = 40.0, interpolation: str = "bilinear", fill: float = 0
) -> Step:
    """Rotate by an angle in [-degrees, degrees] (Chollet 5.2: 40); corners take `fill`."""
    return PerImage(v2().RandomRotation(degrees, interpolation=interpolation, fill=fill))


@AUGMENTATIONS.register("affine")
def affine(
    context: Context,
    /,
    *,
    degrees: float = 0.0,
    translate: tuple = (0.0, 0.0),
    scale: tuple = (1.0, 1.0),
    shear: float = 0.0,
    interpolation: str = "bilinear",
    fill: float = 0,
) -> Step:
    """Rotate, shift (a fraction of width, height), zoom and shear (degrees) in one resampling."""
    transform = v2().RandomAffine(
        degrees, translate, scale, shear, interpolation=interpolation, fill=fill
    )
    return PerImage(transform)


@AUGMENTATIONS.register("color_jitter")
def color_jitter(
    context: Context,
    /,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.0,
) -> Step:
    """Brightness, contrast, saturation (factors in [1-x, 1+x]) and hue, in random order."""
    return PerImage(v2().ColorJitter(brightness, contrast, saturation, hue))


@AUGMENTATIONS.register("rand_augment")
def rand_augment(
    context: Context,
    /,
    *,
    num_ops: int = 2,
    magnitude: int = 9,
    num_magnitude_bins: int = 31,
    interpolation: str = "nearest",
    fill: float = 0,
) -> Step:
    """RandAugment (Cubuk et al., 2020): num_ops random operations of one magnitude."""
    if magnitude >= num_magnitude_bins:
        raise ValueError(f"magnitude ({magnitude}) must be below num_magnitude_bins")
    transform = v2().RandAugment(
        num_ops, magnitude, num_magnitude_bins, interpolation=interpolation, fill=fill
    )
    return PerImage(transform)


@AUGMENTATIONS.register("trivial_augment")
def trivial_augment(
    context: Context,
    /,
    *,
    num_magnitude_bins: int = 31,
    interpolation: str = "nearest",
    fill: float = 0,
) -> Step:
    """TrivialAugment Wide (Müller and Hutter, 2021): one operation of a random strength."""
    transform = v2().TrivialAugmentWide(num_magnitude_bins, interpolation=interpolation, fill=fill)
    return PerImage(transform)


@AUGMENTATIONS.register("erasing")
def erasing(
    context: Context,
    /,
    *,
    p: float = 0.5,
    scale: tuple = (0.02, 0.33),
    ratio: tuple = (0.3, 3.3),
    value: float = 0,
) -> Step:
    """Random erasing (Zhong et al., 2020): a random box set to `value`, with probability p."""
    return PerImage(v2().RandomErasing(p, scale, ratio, value))


@AUGMENTATIONS.register("mixup")
def mixup(context: Context, /, *, alpha: float = 1.0) -> Step:
    """MixUp (Zhang et al., 2018): image and label blended with the next one's, λ ~ Beta(α, α)."""
    return Mixing(v2().MixUp(alpha=alpha, num_classes=context.num_classes))


@AUGMENTATIONS.register("cutmix")
def cutmix(context: Context, /, *, alpha: float = 1.0) -> Step:
    """CutMix (Yun et al., 2019): a random box of the next image pasted in; labels by area."""
    return Mixing(v2().CutMix(alpha=alpha, num_classes=context.num_classes))
