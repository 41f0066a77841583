"""Pictures in and out of a network, and the gradient ascent that paints them."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError
from dlpy.plots import grid
from dlpy.schema import Range
from dlpy.visualize.network import Network

# The ranges of the kinds' options, checked before any run is read (`dlpy visualize ... steps=`).
# Gradient steps: the book's longest is 12.3's 4,000 for style transfer.
Steps = Annotated[int, Range(ge=1, le=10_000)]
# Held-out images in one grid (a 16 x 16 grid at most), all in one batch.
Images = Annotated[int, Range(ge=1, le=256)]
# A painted picture's longer side: VGG16's first block alone holds 64 float32 maps of the picture's
# size, 1 GiB at 2048 x 2048, and its gradient as much again.
Side = Annotated[int, Range(ge=1, le=2048)]


def held_out_images(data: ImageData, index: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 test images index .. index+n-1 with their labels."""
    if not 0 <= index < len(data.test):
        raise DlpyError(f"index={index}: the test split has images 0 .. {len(data.test) - 1}")
    return data.test.x[index : index + n], data.test.y[index : index + n]


def load_picture(path: str | None, network: Network, size: int, key: str) -> torch.Tensor:
    """An image file as uint8 (1, C, H, W) pixels in the network's colours.

    Its longer side becomes `size` pixels.
    """
    if path is None:
        raise DlpyError(f"{key}=<image file> is required")
    try:
        with Image.open(Path(path).expanduser()) as image:
            image = image.convert("L" if network.channels == 1 else "RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise DlpyError(f"{key}={path}: cannot read it as an image ({err})") from None
    scale = size / max(image.size)
    width = max(1, round(image.width * scale))
    height = max(1, round(image.height * scale))
    image = image.resize((width, height), Image.BICUBIC)
    pixels = torch.from_numpy(np.array(image)).view(height, width, network.channels)
    return pixels.permute(2, 0, 1)[None].contiguous().to(network.device)


def visible(x: torch.Tensor, contrast: float = 64) -> torch.Tensor:
    """Float (N, C, H, W) -> uint8, each image standardised and spread around mid-grey.

    The display of Chollet 9.4.
    """
    mean = x.mean((1, 2, 3), keepdim=True)
    std = x.std((1, 2, 3), keepdim=True, unbiased=False)
    return ((x - mean) / (std + 1e-5) * contrast + 128).clamp(0, 255).to(torch.uint8)


def tiles(images: torch.Tensor, cell: int = 56, columns: int = 16) -> torch.Tensor:
    """uint8 (N, C, h, w) images, each scaled up by whole pixels to about `cell` wide, in a grid."""
    scale = max(1, cell // images.shape[-1])
    bigger = F.interpolate(images.float(), scale_factor=scale, mode="nearest")
    return grid(bigger.to(torch.uint8), columns)


def picture(network: Network, x: torch.Tensor) -> torch.Tensor:
    """Network input (1, C, H, W) -> a uint8 (3, H, W) picture."""
    return network.to_uint8(x.detach())[0].expand(3, -1, -1).contiguous()


def jet(v: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] -> the 'jet' colour map (blue, green, red) as (N, 3, H, W) in [0, 1]."""
    return torch.stack([(1.5 - (4 * v - k).abs()).clamp(0, 1) for k in (3, 2, 1)], 1)


def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of (N, C, H, W) to (N, C, *shape)."""
    return F.interpolate(x, size=shape, mode="bilinear", align_corners=False)


def inner(maps: torch.Tensor) -> torch.Tensor:
    """Feature maps without their 2-pixel border, where padding makes artefacts; small maps whole.

    Chollet 9.4.2 and 12.2 leave the border out the same way.
    """
    return maps[..., 2:-2, 2:-2] if min(maps.shape[-2:]) > 8 else maps


def climb(
    x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor], steps: int, lr: float
) -> torch.Tensor:
    """Gradient ascent on the input, each image's gradient first scaled to unit RMS.

    So every image climbs at the same pace whatever the size of its gradient, as Chollet
    (1st ed., 5.4.2) scales it for filter patterns.
    """
    x = x.detach()
    for _ in range(steps):
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x).sum(), x)
        rms = grad.pow(2).mean((1, 2, 3), keepdim=True).sqrt()
        x = (x + lr * grad / (rms + 1e-8)).detach()
    return x
