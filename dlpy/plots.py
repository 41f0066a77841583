"""Image grids for TensorBoard and PNG files."""

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

GREEN, RED = (40, 160, 40), (200, 40, 40)


def labelled_grid(images, captions, correct, columns=8, cell=64, caption_height=12):
    """uint8 (N, C, H, W) images, each scaled up to `cell` pixels with its caption below -> uint8 (3, H, W)."""
    images = images.detach().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    scale = max(1, cell // images.shape[-1])
    images = F.interpolate(images.float(), scale_factor=scale, mode="nearest").to(torch.uint8)
    n, _, h, w = images.shape
    rows = -(-n // columns)
    canvas = Image.new("RGB", (columns * w, rows * (h + caption_height)), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for i, (image, caption, ok) in enumerate(zip(images, captions, correct, strict=False)):
        left, top = (i % columns) * w, (i // columns) * (h + caption_height)
        canvas.paste(Image.fromarray(image.permute(1, 2, 0).numpy()), (left, top))
        draw.text((left + 2, top + h), caption[: w // 6], fill=GREEN if ok else RED, font=font)
    return torch.from_numpy(np.array(canvas)).permute(2, 0, 1).contiguous()


def grid(images, columns=8):
    """uint8 (N, C, H, W) images -> one uint8 (3, H, W) grid, `columns` images a row."""
    from torchvision.utils import (
        make_grid,
    )  # torchvision takes a second to import: only when drawing

    images = images.detach().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return make_grid(images, nrow=columns, padding=2, pad_value=255)


def save_png(image, path):
    """A uint8 (3, H, W) tensor as a PNG file."""
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(path)


def save_gif(frames, path, fps=30, scale=0.5):
    """uint8 (H, W, 3) frames as an animated GIF that loops, shrunk by `scale` (written atomically)."""
    from dlpy.io import atomic_write

    if not frames:
        raise ValueError("save_gif: no frames")
    h, w = frames[0].shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    images = [Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize(size) for frame in frames]
    atomic_write(
        path,
        lambda f: images[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        ),
    )
