"""MLflow and Weights & Biases, each writing to a local store: `logger=mlflow`, `logger=wandb`.

Both are the `track` extra (`pip install 'dlpy[track]'`) and are imported only by a run that
chooses them: importing mlflow alone takes seconds. Each keeps its run's id in the checkpoint,
so a resumed dlpy run goes on in the same tracker run.
"""

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dlpy.callbacks.loggers import Logger, Scalars
from dlpy.errors import DlpyError
from dlpy.hparams import HParam
from dlpy.registry import LOGGERS

if TYPE_CHECKING:
    from dlpy.trainer import Trainer


def missing(module: str) -> DlpyError:
    """The one line for a tracker whose package is not installed: the extra that installs it."""
    return DlpyError(
        f"logger={module} needs {module}, which is not installed: pip install 'dlpy[track]'"
    )


def run_name(run_dir: str) -> str:
    """The run folder as the tracker's run name: relative to here where it is below here."""
    path = Path(run_dir).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


@LOGGERS.register("mlflow")
class MLflow(Logger):
    """Scalars, hyperparameters (as params) and the final numbers in a local MLflow store that
    `mlflow ui --backend-store-uri <tracking_uri>` opens.

    The default store, sqlite:///outputs/mlflow.db, is relative to the folder dlpy runs in, as
    the run folders are (outputs/...); MLFLOW_TRACKING_URI overrides it. MLflow 3 refuses new
    file stores (./mlruns), so the default is SQLite.
    """

    def __init__(
        self,
        run_dir: str | Path,
        hparams: dict[str, HParam],
        tracking_uri: str = "sqlite:///outputs/mlflow.db",
        experiment: str = "dlpy",
    ) -> None:
        super().__init__(hparams)
        try:  # imported only when chosen: mlflow takes seconds to import
            import mlflow
        except ImportError:
            raise missing("mlflow") from None
        self.mlflow = mlflow
        self.run_dir = str(run_dir)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.client = None
        self.run_id = None  # the MLflow run's id: kept in the checkpoint

    def on_fit_start(self, trainer: "Trainer") -> None:
        super().on_fit_start(trainer)
        self.open()

    def open(self) -> None:
        """The client, and the run: created, or the resumed dlpy run's own set running again."""
        if self.client is not None:
            return
        sqlite = self.tracking_uri.removeprefix("sqlite:///")
        if sqlite != self.tracking_uri:
            Path(sqlite).parent.mkdir(parents=True, exist_ok=True)  # SQLite makes no folder
        self.client = self.mlflow.tracking.MlflowClient(tracking_uri=self.tracking_uri)
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (
            experiment.experiment_id
            if experiment
            else self.client.create_experiment(self.experiment)
        )
        tags = {"dlpy.run_dir": str(Path(self.run_dir).resolve())}
        run = self.client.create_run(experiment_id, run_name=run_name(self.run_dir), tags=tags)
        self.run_id = run.info.run_id
        params = [self.mlflow.entities.Param(k, str(v)) for k, v in self.hparams.items()]
        self.client.log_batch(self.run_id, params=params)

    def log_scalars(self, scalars: Scalars, step: int) -> None:
        self.open()
        now = int(time.time() * 1000)
        metric = self.mlflow.entities.Metric
        metrics = [metric(key, value, now, step) for key, value in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.client is not None and not trainer.finished():  # stopped early: no test follows
            self.client.set_terminated(self.run_id, status="FAILED")

    def close(self) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED")

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")


@LOGGERS.register("wandb")
class WandB(Logger):
    """Scalars, the hyperparameters (as the run's config) and the final numbers (its summary) in
    an offline W&B run under <run>/wandb/; `wandb sync <run>/wandb/offline-run-*` uploads it."""

    def __init__(
        self,
        run_dir: str | Path,
        hparams: dict[str, HParam],
        project: str = "dlpy",
        mode: Literal["online", "offline", "disabled"] = "offline",
    ) -> None:
        super().__init__(hparams)
        try:  # imported only when chosen
            import wandb
        except ImportError:
            raise missing("wandb") from None
        self.wandb = wandb
        self.run_dir = str(run_dir)
        self.project = project
        self.mode = mode
        self.run = None
        self.run_id = None  # the W&B run's id: kept in the checkpoint, so a resume goes on in it

    def on_fit_start(self, trainer: "Trainer") -> None:
        super().on_fit_start(trainer)
        self.open()

    def open(self) -> None:
        if self.run is not None:
            return
        os.makedirs(self.run_dir, exist_ok=True)
        settings = self.wandb.Settings(console="off", quiet=True, disable_git=True)
        self.run = self.wandb.init(
            project=self.project,
            mode=self.mode,
            dir=self.run_dir,
            name=run_name(self.run_dir),
            config=self.hparams,
            id=self.run_id,
            resume="allow",
            settings=settings,
        )
        self.run_id = self.run.id

    def log_scalars(self, scalars: Scalars, step: int) -> None:
        self.open()
        self.run.log(scalars, step=step)

    def log_hparams(self, hparams: dict[str, HParam], metrics: Scalars, step: int) -> None:
        self.run.summary.update(metrics)  # the best checkpoint's numbers, as metrics.json's

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self.run is not None and not trainer.finished():  # stopped early: no test follows
            self.run.finish(exit_code=1)
            self.run = None

    def close(self) -> None:
        self.run.finish()
        self.run = None

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")
