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
GREY = (90, 90, 90)  # the true class under a wrong caption, a row's label
CELL = 84  # small images (28-px Fashion-MNIST, 32-px CIFAR) grow by whole pixels toward this
LINE = 12  # the height of a caption's line, in pixels (PIL's default font)


def upscaled(images: torch.Tensor, cell: int = CELL) -> torch.Tensor:
    """uint8 (N, C, H, W) images as (N, 3, H', W'): grey made RGB, and each pixel a square of
    whole pixels (nearest, so no blur) for images smaller than `cell` (28 px: x3, 32 px: x2)."""
    images = images.detach().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    scale = max(1, cell // images.shape[-1])
    if scale == 1:
        return images
    return F.interpolate(images.float(), scale_factor=scale, mode="nearest").to(torch.uint8)


def text_width(text: str, font: ImageFont.ImageFont) -> int:
    return int(np.ceil(font.getlength(text)))


def labelled_grid(
    images: torch.Tensor,
    captions: Sequence[str],
    correct: Sequence[bool],
    columns: int = 8,
    cell: int = CELL,
    truths: Sequence[str] | None = None,
) -> torch.Tensor:
    """uint8 (N, C, H, W) images, each scaled up toward `cell` pixels with its whole caption
    below, green when `correct`, else red with the true class (`truths`) under it.

    -> one uint8 (3, H, W) picture; a column is as wide as its longest caption needs.
    """
    images = upscaled(images, cell)
    n, _, h, w = images.shape
    font = ImageFont.load_default()
    lines = [
        [caption] + ([f"true: {truths[i]}"] if truths is not None and not ok else [])
        for i, (caption, ok) in enumerate(zip(captions, correct, strict=False))
    ]
    width = max([w, *(text_width(line, font) for cell_lines in lines for line in cell_lines)]) + 4
    height = h + LINE * (2 if truths is not None else 1)
    rows = -(-n // columns)
    canvas = Image.new("RGB", (columns * width, rows * height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (image, cell_lines, ok) in enumerate(zip(images, lines, correct, strict=False)):
        left = (i % columns) * width
        top = (i // columns) * height
        canvas.paste(
            Image.fromarray(image.permute(1, 2, 0).numpy()), (left + (width - w) // 2, top)
        )
        for k, line in enumerate(cell_lines):
            colour = (GREEN if ok else RED) if k == 0 else GREY
            draw.text((left + 2, top + h + k * LINE), line, fill=colour, font=font)
    return to_tensor(canvas)


def labelled_rows(
    sets: Sequence[tuple[str, torch.Tensor]], columns: int = 16, cell: int = CELL
) -> torch.Tensor:
    """Image sets of equal length as bands: each row of `columns` images of the first set above
    the same images of the others, each row labelled on the left with its set's name
    ("original", "reconstruction"); the last band may be shorter. -> uint8 (3, H, W)."""
    names = [name for name, _ in sets]
    sets = [upscaled(images, cell) for _, images in sets]
    n, _, h, w = sets[0].shape
    columns = max(1, min(columns, n))  # a few images make a short row, not a wide white one
    font = ImageFont.load_default()
    margin = max(text_width(name, font) for name in names) + 8
    pad = 2
    bands = -(-n // columns)
    size = (margin + columns * (w + pad) + pad, bands * len(sets) * (h + pad) + pad)
    canvas = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(canvas)
    for band in range(bands):
        for k, (name, images) in enumerate(zip(names, sets, strict=True)):
            top = pad + (band * len(sets) + k) * (h + pad)
            draw.text((4, top + (h - LINE) // 2), name, fill=GREY, font=font)
            for col, image in enumerate(images[band * columns : (band + 1) * columns]):
                left = margin + pad + col * (w + pad)
                canvas.paste(Image.fromarray(image.permute(1, 2, 0).numpy()), (left, top))
    return to_tensor(canvas)


def to_tensor(canvas: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def grid(images: torch.Tensor, columns: int = 8, cell: int = CELL) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> one uint8 (3, H, W) grid, `columns` images a row, small
    images scaled up toward `cell` pixels (`upscaled`)."""
    # torchvision takes a second to import: only when drawing
    from torchvision.utils import make_grid

    return make_grid(upscaled(images, cell), nrow=columns, padding=2, pad_value=255)


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
