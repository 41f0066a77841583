"""kind=augment: one training image as the training batches see it, augmented 16 ways.

The figure of Chollet, "Deep Learning with Python" (1st ed., 5.2.5; 2nd ed., 8.2.5), on the run's
own `dataset.augment`. MixUp and CutMix are left out: they blend two images, and here every image
of the batch is the same one.
"""

import torch

from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError
from dlpy.schema import Count
from dlpy.visualize.network import Network
from dlpy.visualize.pictures import Images, tiles


def augment(
    network: Network, data: ImageData, *, index: Count = 0, n: Images = 16
) -> dict[str, torch.Tensor]:
    """Training image `index`, `n` times through the run's augmentations, in a grid."""
    if not 0 <= index < len(data.train):
        raise DlpyError(f"index={index}: the training split has images 0 .. {len(data.train) - 1}")
    if not data.augmentation.steps:
        raise DlpyError(
            "kind=augment: the run's dataset.augment changes no pixels; try one here, "
            "e.g. dataset.augment.rotation=true (docs/data.md#augmentation)"
        )
    copies = data.train.x[index : index + 1].expand(n, -1, -1, -1)
    # a generator of its own: the same grid every time, and the data's own left as it was
    generator = torch.Generator(data.device).manual_seed(0)
    return {"augment": tiles(data.augment(copies, generator), cell=112, columns=4)}
