"""Image grids for TensorBoard and PNG files, and animated GIFs."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from dlpy.io import atomic_write

GREEN = (40, 160, 40)  # a caption that is right
RED = (200, 40, 40)  # a caption that is wrong


def labelled_grid(
    images: torch.Tensor,
    captions: Sequence[str],
    correct: Sequence[bool],
    columns: int = 8,
    cell: int = 64,
    caption_height: int = 12,
) -> torch.Tensor:
    """uint8 (N, C, H, W) images, each scaled up to `cell` pixels with its caption below.

    -> one uint8 (3, H, W) picture; a caption is green when `correct`, else red.
    """
    images = images.detach().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    scale = max(1, cell // images.shape[-1])
    images = F.interpolate(images.float(), scale_factor=scale, mode="nearest").to(torch.uint8)
    n, _, h, w = images.shape
    rows = -(-n // columns)
    canvas = Image.new("RGB", (columns * w, rows * (h + caption_height)), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, (image, caption, ok) in enumerate(zip(images, captions, correct, strict=False)):
        left = (i % columns) * w
        top = (i // columns) * (h + caption_height)
        canvas.paste(Image.fromarray(image.permute(1, 2, 0).numpy()), (left, top))
        draw.text((left + 2, top + h), caption[: w // 6], fill=GREEN if ok else RED, font=font)
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def grid(images: torch.Tensor, columns: int = 8) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> one uint8 (3, H, W) grid, `columns` images a row."""
    # torchvision takes a second to import: only when drawing
    from torchvision.utils import make_grid

    images = images.detach().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return make_grid(images, nrow=columns, padding=2, pad_value=255)


def save_png(image: torch.Tensor, path: str | Path) -> None:
    """A uint8 (3, H, W) tensor as a PNG file."""
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path)


def save_gif(
    frames: Sequence[np.ndarray], path: str | Path, fps: float = 30, scale: float = 0.5
) -> None:
    """uint8 (H, W, 3) frames as a looping animated GIF, shrunk by `scale`, written atomically."""
    if not frames:
        raise ValueError("save_gif: no frames")
    h, w = frames[0].shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize(size) for frame in frames]

    def write(f):
        images[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )

    atomic_write(path, write)
