"""torchvision's ImageNet VGG and Inception, the networks the book dreams and paints with."""

import torch

from dlpy.errors import DlpyError, unknown
from dlpy.io import torchvision_weights
from dlpy.visualize.network import Network

# The book's layers under their torchvision names. Its VGG19 style layers block1_conv1 ...
# block5_conv1 and content layer block5_conv2 are the ReLUs after those convolutions in
# `features`; its DeepDream layers, Inception's "mixed4" ... "mixed7", are torchvision's
# Mixed_6b ... 6e. The book dreams only with Inception and paints only with VGG: VGG dreams
# with the last ReLUs of blocks 4 and 5, and Inception paints with its stem and first block.
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


def pretrained(name: str, device: torch.device) -> Network:
    """torchvision's ImageNet weights, from torch's hub cache or downloaded there.

    torchvision's own code fetches the file; dlpy only refuses a pickle that would run code.
    """
    if name not in PRETRAINED:
        raise DlpyError(f"weights={name}: {unknown('network', name, PRETRAINED)}")
    net, preprocess = torchvision_weights(name, f"weights={name}")
    mean = torch.tensor(preprocess.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.std, device=device).view(1, 3, 1, 1)
    return Network(
        net.to(device),
        lambda x: (x.float() / 255 - mean) / std,
        lambda x: ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8),
        channels=3,
        size=preprocess.crop_size[0],
        canvas=400,
        presets={**PRETRAINED[name], "weights": BOOK_WEIGHTS},
    )
