from pathlib import Path

from dlpy import callbacks
from dlpy.plots import save_png


class ImageFiles(callbacks.Callback):
    """After every epoch, the task's examples as files: images as <run>/images/<name>_epoch<N>.png, texts as .txt."""

    def __init__(self, run_dir):
        self.dir = Path(run_dir) / "images"

    def on_epoch_end(self, trainer, metrics):
        images = trainer.examples()
        if images:
            self.dir.mkdir(parents=True, exist_ok=True)
        for key, value in images.items():
            stem = f"{key.split('/')[-1]}_epoch{trainer.epoch:03d}"
            if key.startswith("text/"):
                (self.dir / f"{stem}.txt").write_text(value, encoding="utf-8")
            else:
                save_png(value, self.dir / f"{stem}.png")
