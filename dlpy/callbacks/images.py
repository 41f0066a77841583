from pathlib import Path
from typing import TYPE_CHECKING

from dlpy.callbacks.base import Callback
from dlpy.plots import save_png
from dlpy.registry import CALLBACKS

if TYPE_CHECKING:
    from dlpy.trainer import Trainer


@CALLBACKS.register("image_files")
class ImageFiles(Callback):
    """The task's examples after every epoch, as files in <run>/images/: PNGs, texts as .txt.

    A file is named <name>_epoch<N>, so the epochs of a run can be compared side by side without
    TensorBoard.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir) / "images"

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None:
        images = trainer.examples()
        if images:
            self.dir.mkdir(parents=True, exist_ok=True)
        for key, value in images.items():
            stem = f"{key.split('/')[-1]}_epoch{trainer.epoch:03d}"
            if key.startswith("text/"):
                (self.dir / f"{stem}.txt").write_text(value, encoding="utf-8")
            else:
                save_png(value, self.dir / f"{stem}.png")
