"""Write the Fashion-MNIST test set as a folder of PNGs, one subfolder per class, plus bad files.

    python scripts/fashion_mnist_folder.py /tmp/fmnist_folder [--source DIR] [--limit N]
    dlpy train dataset=image_folder dataset.root=/tmp/fmnist_folder dataset.channels=1 \\
        dataset.image_size=28 "dataset.mean=[0.2860]" "dataset.std=[0.3530]"

The 10,000 test images (the t10k IDX files, gzipped as Debian's dataset-fashion-mnist package
installs them) become <folder>/<class name>/<index>.png. Three files that are no images go in
with them, as a user's own folder would have: a zero-byte .png, a text file named .jpg and a
PNG cut in half; `dataset=image_folder` must skip and name all three.
"""

import argparse
import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision import datasets

# Fashion-MNIST's class names (Xiao et al., 2017) as torchvision lists them, in label order;
# "T-shirt/top" loses its slash, which cannot be in a folder's name.
CLASSES = [name.replace("/", "_") for name in datasets.FashionMNIST.classes]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not), as an array of its dimensions."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_images(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = folder / CLASSES[label] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)


def write_bad_files(folder: Path) -> list[Path]:
    """A zero-byte PNG, a text file named .jpg and a truncated PNG, in three class folders."""
    empty = folder / CLASSES[0] / "empty.png"
    text = folder / CLASSES[1] / "notes.jpg"
    cut = folder / CLASSES[2] / "truncated.png"
    for path in (empty, text, cut):
        path.parent.mkdir(parents=True, exist_ok=True)
    empty.write_bytes(b"")
    text.write_text("not an image: a note a user left among the photos\n")
    png = io.BytesIO()
    Image.fromarray(np.full((28, 28), 128, dtype=np.uint8)).save(png, format="PNG")
    cut.write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    return [empty, text, cut]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the class folders")
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--limit", type=int, default=None, help="write only the first N images")
    args = parser.parse_args()
    images_file = args.source / "t10k-images-idx3-ubyte.gz"
    labels_file = args.source / "t10k-labels-idx1-ubyte.gz"
    images = read_idx(images_file)[: args.limit]
    labels = read_idx(labels_file)[: args.limit]
    write_images(args.folder, images, labels)
    bad = write_bad_files(args.folder)
    print(f"{len(images)} images in {len(CLASSES)} class folders under {args.folder}")
    print("bad files:", ", ".join(str(p.relative_to(args.folder)) for p in bad))


if __name__ == "__main__":
    main()
