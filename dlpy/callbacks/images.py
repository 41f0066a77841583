from pathlib import Path

from dlpy import callbacks
from dlpy.plots import save_png


class ImageFiles(callbacks.Callback):
    """After every epoch, the task's example images as PNGs: <run>/images/<name>_epoch<N>.png."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir) / "images"

    def on_epoch_end(self, trainer, metrics):
        images = trainer.examples()
        if images:
            self.dir.mkdir(parents=True, exist_ok=True)
        for key, image in images.items():
            save_png(image, self.dir / f"{key.split('/')[-1]}_epoch{trainer.epoch:03d}.png")
