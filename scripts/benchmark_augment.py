"""What each augmentation costs per training batch, here, on the CPU (or --device).

A batch of 128 uint8 images (28x28 grey, as Fashion-MNIST's, and 32x32 colour, as CIFAR's) goes
through each augmentation with its defaults; beside the per-image v2 steps, the same v2 transform
called once on the whole batch (one set of parameters for all) shows what drawing per image costs.

    python scripts/benchmark_augment.py [--device cuda] [--repeats 20] [--threads 1]
"""

import argparse
import statistics
import time

import torch
from torchvision.transforms import v2

from dlpy.data.augment import Augmentation
from dlpy.data.augmentations import AUGMENTATIONS

CHOLLET = {
    "affine": {"degrees": 40, "translate": [0.2, 0.2], "shear": 11.46, "scale": [0.8, 1.2]},
    "hflip": True,
}
PIPELINES = {
    "crop_padding=2 + hflip (before)": {"crop_padding": 2, "hflip": True},
    "augment=chollet": CHOLLET,
    **{name: [name] for name in AUGMENTATIONS.names()},
}


def milliseconds(fn, repeats):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run(device, channels, size, repeats):
    x = torch.randint(0, 256, (128, channels, size, size), dtype=torch.uint8, device=device)
    y = torch.randint(0, 10, (128,), device=device)
    generator = torch.Generator(device).manual_seed(0)
    print(f"\n128 images {channels}x{size}x{size} on {device}: ms per batch (median of {repeats})")
    for label, augment in PIPELINES.items():
        steps = Augmentation(augment, (size, size), 10)
        if steps.mixes:
            ms = milliseconds(lambda s=steps: s.mix(x.float(), y, generator), repeats)
        else:
            ms = milliseconds(lambda s=steps: s.pixels(x, generator), repeats)
        print(f"  {label:34s} {ms:8.2f}")
    rotation = v2.RandomRotation(40)
    ms = milliseconds(lambda: rotation(x), repeats)
    print(f"  {'rotation, one draw for the batch':34s} {ms:8.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch's CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for channels, size in ((1, 28), (3, 32)):
        run(args.device, channels, size, args.repeats)


if __name__ == "__main__":
    main()
