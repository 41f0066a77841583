"""The model summary: per-layer output shapes, parameters and MACs, as Keras's `model.summary()`.

torchinfo draws the table (pytorch/pytorch#2001 asked PyTorch for Keras's summary; torchinfo is
the maintained answer) from one forward pass of one sample, in zeros of the data's shape. Image
data sets give their shape in the config (dataset.channels, dataset.image_size), so `dlpy summary`
reads no image file; other data sets are built for it (a vocabulary, an environment's sizes).

`dlpy summary <overrides>` prints it whole; every run logs it compactly at its start and keeps the
totals in metrics.json (`model/params`, `model/flops_per_sample`, ...).
"""

import copy
import logging
import textwrap
from collections.abc import Sequence

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch import nn
from torchinfo import ModelStatistics
from torchinfo import summary as torchinfo_summary

from dlpy import CONF_DIR
from dlpy.build import build_data, build_task
from dlpy.cli import check_group_choices
from dlpy.data.base import DataSet
from dlpy.data.env import EnvData
from dlpy.data.vision import ImageData
from dlpy.errors import DlpyError, check_number, first_line
from dlpy.tasks.autoencoder import VAE
from dlpy.tasks.base import Task
from dlpy.tasks.gan import GAN
from dlpy.tasks.multi_output import MultiOutput
from dlpy.tasks.reinforce import Reinforce
from dlpy.tasks.siamese import SiameseMatch

log = logging.getLogger("dlpy")

COLUMNS = ("output_size", "num_params", "mult_adds")
Inputs = list[torch.Tensor | None]  # a network's forward arguments


class ActorCritic(nn.Module):
    """An agent's network as its update runs it: the policy's logits and the critic's value."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(obs), self.net.value(obs)


def example_inputs(cfg: DictConfig, data: DataSet | None = None) -> tuple[torch.Tensor, ...]:
    """(x, y): one sample as the network takes it and its label, on the CPU.

    Images and observations are zeros of their shape; a sample of tensor data is its first.
    """
    dataset = cfg.dataset
    if isinstance(data, ImageData) or (data is None and "image_size" in dataset):
        size = dataset.image_size
        return torch.zeros(1, dataset.channels, size, size), torch.zeros(1, dtype=torch.long)
    data = build_data(cfg) if data is None else data
    if isinstance(data, EnvData):
        return torch.zeros(1, data.num_features), torch.zeros(1, dtype=torch.long)
    first = torch.zeros(1, dtype=torch.long, device=data.device)
    # TensorData: the first training sample itself (zeros would be all padding to a text model)
    x, y, *_ = data.batch("train", first)
    return x.cpu(), y.cpu()


def networks(task: Task, x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[nn.Module, Inputs]]:
    """The task's networks by name, each with the arguments of its forward pass for one sample.

    A GAN has two networks, summarised apart; a VAE's encoder and decoder are one network, whose
    forward pass encodes and decodes (a conditional VAE also takes the label); an agent's pass
    computes the policy and the value. A siamese network takes a pair of images; a multi-head
    one its extra inputs beside the image, made from the label as training makes them.
    """
    if isinstance(task, GAN):  # a conditioned GAN's players also take the label or codes
        return task.networks(x, y)
    if isinstance(task, VAE):
        return {"net": (task.net, [x, y])}
    if isinstance(task, Reinforce):
        return {"net": (ActorCritic(task.net), [x])}
    if isinstance(task, SiameseMatch):
        return {"net": (task.net, [x, x])}
    if isinstance(task, MultiOutput) and task.inputs:
        return {"net": (task.net, [x, task.extra_inputs(y)])}
    return {"net": (task.net, [x])}


def summarize(
    task: Task, inputs: tuple[torch.Tensor, ...], depth: int = 3
) -> dict[str, ModelStatistics]:
    """torchinfo's statistics of each network, from a forward pass on the CPU in eval mode.

    The pass leaves the networks as they were: torchinfo restores the training mode, and the
    random generators are restored too (a VAE draws its noise), so a run that logs its summary
    trains as one that does not.
    """
    stats = {}
    with torch.random.fork_rng(devices=[]):
        for name, (net, args) in networks(task, *inputs).items():
            try:
                stats[name] = torchinfo_summary(
                    net,
                    input_data=args,
                    depth=depth,
                    col_names=COLUMNS,
                    row_settings=("var_names",),
                    mode="eval",
                    device="cpu",
                    verbose=0,
                )
            except RuntimeError as err:  # a model that does not fit its data's shape
                cause = first_line(err.__cause__ or err)  # torchinfo wraps torch's error
                raise DlpyError(f"model summary: {name} fails on one sample: {cause}") from None
    return stats


def counts(net: nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameters, each shared tensor counted once."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in net.parameters() if not p.requires_grad)
    return trainable, frozen


def model_numbers(task: Task, stats: dict[str, ModelStatistics]) -> dict[str, float]:
    """What metrics.json keeps: parameters and FLOPs per sample, in total and per network.

    FLOPs are torchinfo's multiply-accumulates times 2 (one multiply and one add each) of one
    sample's forward pass: convolutions, linear and recurrent layers; norms and activations add
    little and are not counted. A family with several networks (GAN) also has
    model/<network>/params and model/<network>/flops_per_sample; the totals add them up.
    """
    numbers = {"model/params": 0, "model/trainable_params": 0, "model/flops_per_sample": 0}
    for name, stat in stats.items():
        trainable, frozen = counts(networks_module(task, name))
        own = {"params": trainable + frozen, "flops_per_sample": 2 * stat.total_mult_adds}
        numbers["model/params"] += own["params"]
        numbers["model/trainable_params"] += trainable
        numbers["model/flops_per_sample"] += own["flops_per_sample"]
        if len(stats) > 1:
            numbers |= {f"model/{name}/{key}": value for key, value in own.items()}
    return numbers


def networks_module(task: Task, name: str) -> nn.Module:
    """The network called `name` in `networks`: the task's net, or a GAN's player."""
    return task.net if name == "net" else getattr(task.net, name)


def totals(task: Task, stats: dict[str, ModelStatistics]) -> list[str]:
    """The lines under the tables: parameters, trainable and frozen, FLOPs per sample."""
    lines = []
    for name, stat in stats.items():
        trainable, frozen = counts(networks_module(task, name))
        macs = stat.total_mult_adds
        lines.append(
            f"{name}: {millions(trainable + frozen)} parameters ({trainable:,} trainable, "
            f"{frozen:,} frozen); {millions(macs)} MACs = {millions(2 * macs)} FLOPs per sample"
        )
    return lines


def millions(n: float) -> str:
    return f"{n / 1e6:.2f} M"


def visualize_layers(task: Task, inputs: tuple[torch.Tensor, ...]) -> list[str] | None:
    """The layer names `dlpy visualize layer=` accepts; None where visualize takes no layers.

    dlpy.visualize.Network finds them (the modules with a 4-D output); it freezes the network it
    is given, so it gets a copy.
    """
    # heavy: dlpy.visualize imports every kind of picture, which only dlpy summary needs here
    from dlpy.visualize.network import IMAGE_TASKS, Network

    x = inputs[0]
    if not isinstance(task, IMAGE_TASKS) or x.ndim != 4:
        return None
    _, channels, size, _ = x.shape
    same = lambda pixels: pixels.float()  # noqa: E731  (the shapes alone matter here)
    return Network(copy.deepcopy(task.net), same, same, channels, size, canvas=size).layers()


def render(cfg: DictConfig, task: Task, inputs: tuple[torch.Tensor, ...], depth: int) -> str:
    """The whole summary: a table per network, the totals, the layers visualize takes."""
    stats = summarize(task, inputs, depth)
    model = f"{cfg.model.name} ({type(task).__name__})"
    parts = [f"model {model} on {cfg.dataset.name}, one sample of {shape(inputs[0])}"]
    for name, stat in stats.items():
        parts += ([name] if len(stats) > 1 else []) + [table(stat, memory=True)]
    parts += totals(task, stats)
    layers = visualize_layers(task, inputs)
    if layers is None:
        parts.append("dlpy visualize layer=: none (it needs a network trained on images)")
    else:
        names = ", ".join(layers) or "none"
        parts.append(textwrap.fill(f"dlpy visualize layer= takes: {names}", width=100))
    return "\n".join(parts)


def shape(x: torch.Tensor) -> str:
    return "x".join(str(n) for n in x.shape[1:])


def log_summary(task: Task, inputs: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """The run log's summary: top-level layers and totals; returns metrics.json's numbers."""
    stats = summarize(task, inputs, depth=1)
    for name, stat in stats.items():
        log.info("%s, one sample of %s:\n%s", name, shape(inputs[0]), table(stat))
    for line in totals(task, stats):
        log.info("%s", line)
    return model_numbers(task, stats)


def table(stat: ModelStatistics, memory: bool = False) -> str:
    """torchinfo's table, without its memory estimates unless `memory`.

    Its MACs line is left out: torchinfo 1.8 labels it in megabytes; the totals line says it.
    """
    lines = [line for line in str(stat).splitlines() if not line.startswith("Total mult-adds")]
    if memory:
        return "\n".join(lines)
    end = next((i for i, line in enumerate(lines) if line.startswith("Input size")), len(lines))
    return "\n".join(lines[: max(0, end - 1)])


def compose_config(overrides: list[str]) -> DictConfig:
    """The config `dlpy train` would run with these overrides, composed without running it."""
    check_group_choices(overrides)
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides)


def summary_command(args: Sequence[str]) -> None:
    """`dlpy summary [overrides] [depth=3]`: the configured model's summary, nothing trained."""
    if any(arg.startswith("-") for arg in args):
        raise DlpyError("usage: dlpy summary [overrides as for dlpy train] [depth=3]")
    depth = 3
    overrides = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key == "depth":
            check_number(
                "depth", int(value) if value.isdigit() else value, at_least=1, integer=True
            )
            depth = int(value)
        else:
            overrides.append(arg)
    cfg = compose_config(overrides)
    task = build_task(cfg)
    print(render(cfg, task, example_inputs(cfg), depth))
