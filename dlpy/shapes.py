"""Does the model fit the data: its sizes checked against the data's, then one rehearsed step.

The model presets take their sizes from the data set by interpolation (`in_channels:
${dataset.channels}`), but an override breaks the link: `model.in_channels=3` on grey
Fashion-MNIST ends in torch's traceback at the first step, `model.num_classes=5` on ten classes in
`IndexError: Target 5 is out of bounds`, a VAE on standardised pixels trains on nonsense. Once the
data is built, before any step:

1. `check_sizes`: every model option that is a size of the data (MODEL_SIZES) must be the size
   the data declares (`DataSet.shapes`, dlpy/data/base.py); the line names both keys:
   `model.in_channels=3 but dataset.channels=1 (the images have 1 channel)`.
2. `probe`: the pixel range the task's loss assumes (`Task.scaling`), then the task's training
   step, forward pass and loss, on a copy of the task and a few samples of the first training
   batch (in the task's own form: `Task.probe_batch`, which gives a siamese pair partners within
   those few), on the CPU, with no backward pass and no optimizer step. A shape error that no size
   declares (a kernel longer than the sequence it slides over) ends in one line naming the preset
   and the batch's sizes. The run's weights, random generators and batch order stay as they were.
   An agent, whose batches are episodes played, is not probed: its sizes are checked in (1).
"""

import copy
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dlpy.build import resolved
from dlpy.data.base import Batch, DataSet
from dlpy.errors import DlpyError, first_line
from dlpy.tasks.base import Task

# Model option -> the size of the data it must equal (dlpy/data/base.py's SHAPES): the names the
# model presets give the sizes they take from `dataset.*`.
MODEL_SIZES = {
    "in_channels": "channels",
    "image_size": "image_size",
    "num_classes": "num_classes",
    "num_features": "num_features",
    "sequence_length": "sequence_length",
    "vocab_size": "vocab_size",
    "num_actions": "num_actions",
}
# What the data's size means, for the error line ({n}: the size; {s}, {es}: plural endings).
MEANING = {
    "channels": "the images have {n} channel{s}",
    "image_size": "the images are {n}x{n}",
    "num_classes": "the data has {n} class{es}",
    "num_features": "a sample has {n} feature{s} (per step of a sequence)",
    "sequence_length": "a sample is {n} step{s} long",
    "vocab_size": "the tokens are indices below {n}",
    "num_actions": "the environment has {n} action{s}",
}
RANGES = {"unit": "[0, 1]", "symmetric": "[-1, 1]", "standardize": "mean 0, std 1"}
# Samples in the probe's batch: two, so that batch norm has statistics to take in training mode,
# and few, so that even a pretrained ImageNet network's forward pass on the CPU is quick.
PROBE_SAMPLES = 2


def check_sizes(cfg: DictConfig, data: DataSet) -> None:
    """Each model option that is a size of the data must be the data's: before the model is
    built from it, so the line names the two keys rather than torch's layer."""
    options = resolved(cfg.model, "model")
    shapes = data.shapes()
    for option, key in MODEL_SIZES.items():
        value = options.get(option)
        size = shapes.get(key)
        # None: the option does not apply (a series has no image_size); a value of the wrong
        # kind is the option schema's to name
        if size is None or not isinstance(value, int) or isinstance(value, bool) or value == size:
            continue
        plural = {"n": size, "s": "s" * (size != 1), "es": "es" * (size != 1)}
        meaning = MEANING[key].format(**plural)
        # text names its sequence length dataset.maxlen: then the line says what it is
        where = f"dataset.{key}={size} ({meaning})" if key in cfg.dataset else meaning
        raise DlpyError(f"model.{option}={value} but {where}")


def check_scaling(task: Task, cfg: DictConfig, data: DataSet) -> None:
    """The pixel range the task's loss assumes (a Bernoulli decoder's BCE reads [0, 1], a tanh
    generator draws [-1, 1]) must be the data's: another trains, on nonsense."""
    have = data.shapes().get("scaling")
    if task.scaling is None or have is None or have == task.scaling:
        return
    raise DlpyError(
        f"model.task.name={cfg.model.task.name} needs dataset.scaling={task.scaling} (pixels in "
        f"{RANGES[task.scaling]}) but dataset.scaling={have}"
    )


class Rehearsal:
    """The trainer as a probed step sees it: the loss handed to backward goes no further."""

    ddp = None  # one process
    epoch = 0

    def backward(self, loss: torch.Tensor, optimizer: Any) -> None:
        """No backward pass and no step: the probe's weights never change."""


def first_samples(data: DataSet, n: int = PROBE_SAMPLES) -> Batch | None:
    """The first n samples of the first training batch, on the CPU (None: no batch); the data's
    generator is put back, so the run draws the batches it would have drawn."""
    state = data.state_dict()
    try:
        batch = next(iter(data.train_batches()), None)
    finally:
        data.load_state_dict(state)
    return None if batch is None else tuple(t[:n].cpu() for t in batch)


def preset(cfg: DictConfig) -> str:
    """The model preset's name (model=lenet5), else its builder's (model.name)."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("model")
        if choice:
            return choice
    return cfg.model.name


def sizes(batch: Batch) -> str:
    """`a batch of 2: inputs 2x1x28x28, targets 2`"""
    x, y, *_ = batch
    shape = ["x".join(map(str, t.shape)) or "()" for t in (x, y)]
    return f"a batch of {len(x)}: inputs {shape[0]}, targets {shape[1]}"


def probe(task: Task, cfg: DictConfig, data: DataSet) -> None:
    """The task's pixel range, then its training step on a few samples, rehearsed on a copy.

    The copy's parameters need no gradient, so the forward pass builds no graph for them; a
    gradient the loss itself takes (WGAN-GP's penalty, of the critic by its input) still runs,
    which torch.no_grad would refuse. The CPU's random generator is put back after (dropout, a
    GAN's noise, a VAE's sample), and the copy is thrown away: the run trains as it would have.
    """
    check_scaling(task, cfg, data)
    if not task.probed:
        return
    batch = first_samples(data)
    if batch is None:
        return  # no training batch: the trainer says so
    rehearsed = copy.deepcopy(task)
    rehearsed.trainer = Rehearsal()
    with torch.random.fork_rng(devices=[]):
        try:
            rehearsed.attach(data)
            rehearsed.configure_optimizers()  # a step names its optimizer
            rehearsed.requires_grad_(False)
            rehearsed.train()
            rehearsed.training_step(rehearsed.probe_batch(batch), 0)
        except NotImplementedError:
            raise  # a task that is not finished, not a model that does not fit
        except (RuntimeError, ValueError, IndexError) as err:
            raise DlpyError(
                f"model {preset(cfg)!r} does not fit the data: {first_line(err)} ({sizes(batch)})"
            ) from None
