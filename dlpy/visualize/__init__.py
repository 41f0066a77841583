"""Seeing inside a convnet: activations, filter patterns, Grad-CAM, DeepDream and style transfer;
and what the network is shown: a training image through the run's augmentations.

The visualisations of "Deep Learning with Python" (Chollet, 2nd ed.: 9.4 for the first three,
12.2 DeepDream, 12.3 style transfer), on a dlpy checkpoint or on torchvision's ImageNet VGG and
Inception. Each kind returns {file stem: uint8 (3, H, W) image}, which `dlpy visualize` writes as
PNGs and into TensorBoard. The modules, in reading order:

    network.py   the frozen network, its layers and their outputs (forward hooks)
    imagenet.py  torchvision's ImageNet networks with the book's layers
    pictures.py  images in and out, and the gradient ascent that paints them
    features.py  kind=activations and kind=filters (9.4.1, 9.4.2)
    heatmaps.py  kind=gradcam (9.4.3; Selvaraju et al., 2017)
    dream.py     kind=deepdream and kind=style_transfer (12.2, 12.3; Gatys et al., 2015)
    augmented.py kind=augment (1st ed. 5.2.5: one image augmented 16 ways)
"""

from dlpy.errors import DlpyError
from dlpy.runs import typed_options
from dlpy.schema import Option, declared
from dlpy.visualize import augmented, dream, features, heatmaps
from dlpy.visualize.imagenet import pretrained
from dlpy.visualize.network import Network

__all__ = ["KINDS", "PRETRAINED_KINDS", "Network", "options", "pretrained", "typed"]

KINDS = {
    "activations": features.activations,
    "filters": features.filters,
    "gradcam": heatmaps.gradcam,
    "deepdream": dream.deepdream,
    "style_transfer": dream.style_transfer,
    "augment": augmented.augment,
}
PRETRAINED_KINDS = ("deepdream", "style_transfer")  # they also run on weights=<torchvision net>


def options(kind: str) -> dict[str, Option]:
    """A kind's own options, as its function declares them (after the network and the data)."""
    own = {name: found for name, found, _ in list(declared(KINDS[kind]))[2:]}
    return own | ({"weights": Option(str)} if kind in PRETRAINED_KINDS else {})


def typed(kind: str, given: dict[str, str]) -> dict[str, object]:
    """`key=value` strings as the kind's keyword arguments, each checked against its declaration
    (`steps must be an integer in [1, 10000], got 0`).

    An option the kind does not take fails naming the options it does take.
    """
    known = options(kind)
    for key in given:
        if key not in known:
            raise DlpyError(
                f"{key}= does not apply to kind={kind}; its options: {', '.join(known)}"
            )
    return typed_options(given, known)
