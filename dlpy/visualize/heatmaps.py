"""Grad-CAM (Selvaraju et al., 2017): where in an image the evidence for a class lies.

Chollet, "Deep Learning with Python" (2nd ed.), 9.4.3 shows it on Keras's Xception.
"""

import torch
import torch.nn.functional as F

from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError
from dlpy.plots import labelled_grid
from dlpy.schema import Count
from dlpy.visualize.network import Network
from dlpy.visualize.pictures import Images, held_out_images, jet, resize


def gradcam_maps(
    network: Network, x: torch.Tensor, layer: str, target: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of input batch x at `layer` -> (maps (N, H, W) in [0, 1], predictions).

    The feature maps are weighted by the mean gradient of the class's score over each map
    (Selvaraju et al., 2017, eq. 1), summed and ReLU'd (eq. 2), then scaled up to the input and
    to [0, 1]. The class is each image's prediction, or `target`. The score is the class's logit,
    as in the paper; the book differentiates the softmax output instead (Chollet 9.4.3), whose
    gradient vanishes once the network is sure of a class.
    """
    with torch.enable_grad():
        # the weights are frozen: the graph must start at the input
        x = x.detach().requires_grad_(True)
        features, logits = network.run(x, [layer], logits=True)
        maps = features[layer]
        pred = logits.argmax(1)
        classes = pred if target is None else torch.full_like(pred, target)
        score = logits.gather(1, classes[:, None])
        (grads,) = torch.autograd.grad(score.sum(), maps)
    weights = grads.mean((2, 3), keepdim=True)  # alpha_k^c, eq. 1
    cam = F.relu((weights * maps).sum(1, keepdim=True)).detach()  # ReLU(sum_k alpha_k^c A^k), eq. 2
    cam = resize(cam, x.shape[-2:])[:, 0]
    return cam / cam.amax((1, 2), keepdim=True).clamp_min(1e-12), pred


def class_index(classes: list[str], target: str) -> int:
    """`target=` as a class index: the index itself, or a class name in any case."""
    names = {c.lower(): i for i, c in enumerate(classes)}
    if target.isdigit() and int(target) < len(classes):
        return int(target)
    if target.lower() in names:
        return names[target.lower()]
    raise DlpyError(
        f"target={target}: not a class; give an index 0 .. {len(classes) - 1} or one of: "
        + ", ".join(classes)
    )


def overlay(pixels: torch.Tensor, cam: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 (N, C, H, W) images scaled up by `scale` with their Grad-CAM maps (N, H, W) on top.

    -> uint8 (N, 3, scale * H, scale * W).
    """
    big = F.interpolate(pixels.float(), scale_factor=scale, mode="nearest") / 255
    big = big.expand(-1, 3, -1, -1)
    heat = jet(resize(cam[:, None], big.shape[-2:])[:, 0])
    return ((0.5 * big + 0.5 * heat) * 255).round().to(torch.uint8)  # Chollet blends 0.4 heat


def gradcam(
    network: Network,
    data: ImageData,
    *,
    layer: str | None = None,
    index: Count = 0,
    n: Images = 16,
    target: str | None = None,
) -> dict[str, torch.Tensor]:
    """Grad-CAM heatmaps over test images, one grid per layer.

    Each image is captioned `predicted / true`, green when right.
    """
    if network.classes is None:
        raise DlpyError(
            "kind=gradcam needs a classifier: this run's network does not predict classes"
        )
    wanted = None if target is None else class_index(network.classes, target)
    pixels, labels = held_out_images(data, index, n)
    scale = max(1, 168 // pixels.shape[-1])  # room for the caption under each image
    images = {}
    for name in network.chosen(layer, network.conv_layers()[-1:]):
        cam, pred = gradcam_maps(network, network.normalize(pixels), name, wanted)
        captions = [
            f"{network.classes[p]} / {network.classes[y]}"
            for p, y in zip(pred.tolist(), labels.tolist(), strict=False)
        ]
        stem = f"gradcam_{name}" if wanted is None else f"gradcam_{name}_class{wanted}"
        images[stem] = labelled_grid(
            overlay(pixels, cam, scale),
            captions,
            (pred == labels).tolist(),
            cell=scale * pixels.shape[-1],
        )
    return images
