"""dlpy's training loop against plain PyTorch loops, on six networks, side by side in one run.

For each network, the same number of training steps on Fashion-MNIST (batch 128, its preset's
optimizer with a constant rate), timed three ways, each in a fresh process:

  (a) dlpy:  `dlpy train model=<preset> ...` as a user runs it (progress bar, TensorBoard,
             checkpoints); its time is metrics.json's time/train_s.
  (b) a tutorial's loop: a DataLoader over torchvision's FashionMNIST with ToTensor/Normalize
      transforms, fp32, NCHW, the optimizer's default implementation (what dlpy's choices
      beat).
  (c) a minimal loop over tensors normalised once in memory, with the same network, optimizer,
      batch size, layout, precision and gradient clipping as (a): what dlpy's loop itself costs
      is a/c.

The runs are interleaved (a, c, b for every network, then again: this machine is noisy) and the
table holds medians. It also prints the FLOP/s (a) achieves, counted with
torch.utils.flop_counter, against the matmul rate measured here in fp32 and bf16 (4096x4096, or
smaller where one call would take over 2 s: emulated bf16), and start-up: process start to
dlpy's first training step, `dlpy --help`, `dlpy list` and `dlpy train --help`, each against
`python -c "import torch"`.

    python scripts/benchmark.py [--networks mlp,cnn] [--repeats 3] [--precision bf16]
                                [--compile] [--channels-last on|off] [--steps-scale 0.5]
                                [--device cuda] [--also trainer.compile=true ...]
                                [override ...]

--also KEY=VALUE (repeatable) adds a variant of (a), dlpy with that override, interleaved with
the others, and a column of its time per sample against (a)'s: how a default such as
channels_last or torch.compile is chosen per network (docs/performance.md).

Overrides after the options go to every run, the plain loops included (trainer.threads=1 to
measure one core, under `taskset -c 0`).
"""

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DLPY = [sys.executable, "-m", "dlpy"]
COMMON = ["scheduler=none"]  # a constant rate: (c) has no schedule either


@dataclasses.dataclass(frozen=True)
class Network:
    overrides: tuple[str, ...]  # what picks it in `dlpy train`
    steps: int  # training steps timed: a few seconds of work on 2 CPU cores
    convnet: bool = False  # the a/b target (0.65) is for convnets
    loss: str = "cross_entropy"


NETWORKS = {
    "mlp": Network(("model=mlp",), steps=400),
    "pytorch_convnet": Network(("model=pytorch_convnet",), steps=60, convnet=True),
    "cnn": Network((), steps=120, convnet=True),  # the default run: model=cnn
    "resnet20": Network(("model=resnet",), steps=12, convnet=True),
    "lstm": Network(("model=lstm",), steps=60),
    "vae": Network(("model=vae",), steps=400, loss="neg_elbo"),
}


# -- the three loops, each run in a process of its own (--run) ----------------------------------


def compose(name: str, extra: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from dlpy import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose("train", [*NETWORKS[name].overrides, *COMMON, *extra])


def loss_of(kind: str, net, x, y):
    import torch
    import torch.nn.functional as F

    if kind == "cross_entropy":
        return F.cross_entropy(net(x), y)
    logits, mu, logvar = net(x)  # the dense VAE: Bernoulli reconstruction + KL (Kingma, Welling)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * torch.sum(1 + logvar.float() - mu.float().pow(2) - logvar.float().exp(), dim=1)
    return (recon + kl).mean()


class RecurrentFlops:
    """The FLOPs of the recurrent layers, which FlopCounterMode misses: the CPU runs them as one
    fused op. Per step and direction a layer multiplies its input and its state by the weights of
    each gate (4 for an LSTM, 3 for a GRU): 2 FLOPs a weight; backward costs twice forward."""

    GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}

    def __init__(self, net) -> None:
        self.flops = 0
        for module in net.modules():
            if type(module).__name__ in self.GATES:
                module.register_forward_hook(self.count)

    def count(self, module, inputs, output) -> None:
        x = inputs[0]
        if not hasattr(x, "shape"):  # a packed sequence: its real steps
            steps = len(x.data)
        else:
            steps = x.shape[0] * x.shape[1]  # batch_first or not: batch x time
        gates = self.GATES[type(module).__name__]
        directions = 2 if module.bidirectional else 1
        for layer in range(module.num_layers):
            width = module.input_size if layer == 0 else module.hidden_size * directions
            weights = gates * module.hidden_size * (width + module.hidden_size)
            self.flops += 3 * 2 * steps * weights * directions


def plain_loop(name: str, extra: list[str], batches, flop_batch=None, tutorial=False) -> dict:
    """Train on `batches` in a plain loop: the seconds, and the FLOPs of one step. A `tutorial`
    loop keeps torch's defaults (fp32, NCHW, the optimizer's default implementation); otherwise
    the precision, layout and optimizer are dlpy's, so that only the loop differs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dlpy.build import build_task
    from dlpy.precision import resolve_device, resolve_precision

    cfg = compose(name, extra)
    device = resolve_device(cfg.trainer.device)
    if cfg.trainer.threads:  # as dlpy sets them (trainer.threads=1: one core's numbers)
        torch.set_num_threads(cfg.trainer.threads)
    torch.manual_seed(0)
    channels_last = cfg.trainer.channels_last and not tutorial
    layout = torch.channels_last if channels_last else torch.contiguous_format
    task = build_task(cfg)
    net = task.net.to(device, memory_format=layout)
    factory = task.optimizer_factory  # a partial of the torch class, with dlpy's options
    fused = {"fused": None} if tutorial and "fused" in factory.keywords else {}
    opt = factory.func(net.parameters(), **{**factory.keywords, **fused})
    if cfg.trainer.compile:
        net.compile()
    precision = "fp32" if tutorial else resolve_precision(cfg.trainer.precision, device)
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    kind = NETWORKS[name].loss
    clip = cfg.trainer.grad_clip

    def step(x, y):
        if x.ndim == 4:
            x = x.contiguous(memory_format=layout)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_of(kind, net, x, y)
        opt.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()

    start = time.perf_counter()
    samples = 0
    for x, y in batches:
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        samples += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()  # the queued kernels are part of the time
    seconds = time.perf_counter() - start
    flops = None
    if flop_batch is not None:  # one more step, counted (forward and backward)
        recurrent = RecurrentFlops(net)
        with FlopCounterMode(display=False) as counter:
            step(*flop_batch)
        flops = (counter.get_total_flops() + recurrent.flops) / len(flop_batch[1])
    return {"seconds": seconds, "samples": samples, "flops_per_sample": flops}


def tensor_run(name: str, extra: list[str]) -> dict:
    import torch

    from dlpy.build import build_data
    from dlpy.precision import resolve_device

    cfg = compose(name, extra)
    data = build_data(cfg).to(resolve_device(cfg.trainer.device))  # where dlpy keeps it
    x = data.normalize(data.train.x)
    y = data.train.y
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0)).to(x.device)
    indices = order.split(cfg.dataset.batch_size)[: NETWORKS[name].steps]
    # gathered in the loop, whole rows at a time, as dlpy gathers them
    batches = ((x.index_select(0, i), y.index_select(0, i)) for i in indices)
    return plain_loop(name, extra, batches, flop_batch=(x[indices[0]], y[indices[0]]))


def dataloader_run(name: str, extra: list[str], workers: int) -> dict:
    from itertools import islice

    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from dlpy.build import build_data

    cfg = compose(name, extra)
    build_data(cfg)  # leaves the files in torchvision's layout under dataset.root
    pipeline = [transforms.ToTensor()]
    if cfg.dataset.get("scaling", "standard") != "unit":  # the VAE reads pixels in [0, 1]
        pipeline.append(transforms.Normalize(tuple(cfg.dataset.mean), tuple(cfg.dataset.std)))
    images = datasets.FashionMNIST(
        Path(cfg.dataset.root).expanduser(), train=True, transform=transforms.Compose(pipeline)
    )
    loader = DataLoader(
        images, batch_size=cfg.dataset.batch_size, shuffle=True, num_workers=workers
    )
    return plain_loop(name, extra, islice(loader, NETWORKS[name].steps), tutorial=True)


def dlpy_run(name: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as run:
        args = [
            "train",
            *NETWORKS[name].overrides,
            *COMMON,
            *extra,
            "trainer.max_epochs=1",
            f"trainer.limit_train_batches={NETWORKS[name].steps}",
            "trainer.limit_eval_batches=1",
            f"hydra.run.dir={run}",
        ]
        subprocess.run([*DLPY, *args], check=True, capture_output=True)
        metrics = json.loads((Path(run) / "metrics.json").read_text())
    samples = metrics["train/samples_per_s"] * metrics["time/train_s"]
    return {"seconds": metrics["time/train_s"], "samples": samples, **metrics}


def in_process(way: str, name: str, extra: list[str], workers: int) -> dict:
    """One measurement in a fresh interpreter, so that no loop inherits another's warm caches."""
    command = [sys.executable, __file__, "--run", way, "--networks", name]
    command += ["--workers", str(workers), "--steps", str(NETWORKS[name].steps)]
    done = subprocess.run([*command, "--", *extra], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


# -- the machine's own rates and start-up -------------------------------------------------------


def matmul_rate(dtype_name: str, device: str, n_max: int = 4096, repeats: int = 5) -> tuple:
    """(FLOP/s, n) of an n x n matmul on `device` (2 n^3 FLOPs each), the best of `repeats`.

    n doubles from 512 up to n_max while one call would stay under 2 s: where bf16 is emulated
    (no AMX or AVX512-BF16) it runs at about 1 GFLOP/s on a 2-core Zen 3, so one 4096x4096 call
    (137 GFLOP) takes over 2 minutes, and the six of a measurement a quarter of an hour.
    """
    import torch

    dtype = getattr(torch, dtype_name)
    sync = torch.cuda.synchronize if device.startswith("cuda") else lambda: None

    def seconds(a, b) -> float:
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        return time.perf_counter() - start

    n = 512
    while True:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        a @ b  # the first call picks and caches the kernel
        if n >= n_max or seconds(a, b) * 8 > 2:  # the next size takes 8x as long
            break
        n *= 2
    best = min(seconds(a, b) for _ in range(repeats))
    return 2 * n**3 / best, n


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


# The floor under any training script's start-up: torch, torchvision (the data set) and one Adam
# step, whose first call imports torch._dynamo (over a second on 2 cores; `import torch` alone
# does not).
FIRST_STEP = """
import torch, torchvision
net = torch.nn.Linear(784, 10)
opt = torch.optim.Adam(net.parameters())
net(torch.randn(128, 784)).sum().backward()
opt.step()
"""
STARTUP = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "plain script: 1 Adam step": [sys.executable, "-c", FIRST_STEP],
    "dlpy --help": [*DLPY, "--help"],
    "dlpy list": [*DLPY, "list"],
    "dlpy train --help": [*DLPY, "train", "--help"],
}


# -- the table ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated names")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for (b)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (scripts/gpu_check.sh)")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), help="default: trainer.precision's"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile in (a), (b), (c)")
    parser.add_argument("--channels-last", choices=("on", "off"), help="default: the preset's")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="more or fewer steps")
    parser.add_argument("--no-dataloader", action="store_true", help="skip (b)")
    parser.add_argument(
        "--also", action="append", default=[], metavar="KEY=VALUE", help="a variant of (a)"
    )
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)  # a child's, as scaled
    parser.add_argument("--run", choices=("tensors", "dataloader", "dlpy"), help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = args.networks.split(",")
    for name in names:
        if name not in NETWORKS:
            parser.error(f"--networks: unknown network {name!r}; choose from {', '.join(NETWORKS)}")
    for name in names:  # a child process is told its steps; the parent scales them
        steps = args.steps or max(2, round(NETWORKS[name].steps * args.steps_scale))
        NETWORKS[name] = dataclasses.replace(NETWORKS[name], steps=steps)

    if args.run:  # a child process: one measurement, printed as JSON
        run = {"tensors": tensor_run, "dlpy": dlpy_run}.get(args.run)
        result = (
            run(names[0], args.extra) if run else dataloader_run(names[0], args.extra, args.workers)
        )
        print(json.dumps(result))
        return

    extra = [f"trainer.device={args.device}", *args.extra]
    if args.precision:
        extra.insert(1, f"trainer.precision={args.precision}")
    if args.compile:
        extra.append("trainer.compile=true")
    if args.channels_last:
        extra.append(f"trainer.channels_last={args.channels_last == 'on'}")

    import torch

    from dlpy.precision import resolve_device, resolve_precision

    for override in args.extra:  # the matmul rate at the runs' own thread count
        if override.startswith("trainer.threads=") and int(override.partition("=")[2]):
            torch.set_num_threads(int(override.partition("=")[2]))
    # what (a) and (c) run in: trainer.precision=auto resolved on this device, as dlpy resolves it
    precision = resolve_precision(
        compose(names[0], extra).trainer.precision, resolve_device(args.device)
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {precision}, {extra}")
    measured = {d: matmul_rate(d, args.device) for d in ("float32", "bfloat16")}
    rates = {d: rate for d, (rate, _) in measured.items()}
    print(
        "matmul: "
        + ", ".join(f"{d} {r / 1e9:.1f} GFLOP/s ({n}x{n})" for d, (r, n) in measured.items())
    )
    peak = rates["bfloat16" if precision == "bf16" else "float32"]

    ways = ["dlpy", *args.also, "tensors"] + ([] if args.no_dataloader else ["dataloader"])
    results = {(name, way): [] for name in names for way in ways}
    startup = {key: [] for key in [*STARTUP, "dlpy train: first step"]}
    for repeat in range(args.repeats):
        for name in names:
            for way in ways:  # a, c, b, then the next network: interleaved
                if way == "dlpy":
                    result = dlpy_run(name, extra)
                elif way in args.also:  # a variant of (a): its override comes last, and wins
                    result = dlpy_run(name, [*extra, way])
                else:
                    result = in_process(way, name, extra, args.workers)
                results[name, way].append(result)
                if way == "dlpy":
                    startup["dlpy train: first step"].append(result["time/startup_s"])
                print(
                    f"  repeat {repeat + 1} {name:16s} {way:10s} {result['seconds']:6.2f} s",
                    flush=True,
                )
        for key, command in STARTUP.items():
            startup[key].append(wall(command))

    def us_per_sample(name: str, way: str) -> float:
        runs = results[name, way]
        return statistics.median(1e6 * r["seconds"] / r["samples"] for r in runs)

    def ratio(name: str, way: str, base: str = "dlpy") -> float:  # median of paired ratios
        pairs = zip(results[name, base], results[name, way], strict=True)
        return statistics.median(
            (a["seconds"] / a["samples"]) / (o["seconds"] / o["samples"]) for a, o in pairs
        )

    print()
    print(f"medians of {args.repeats} interleaved repeats; us per training sample")
    header = f"{'network':16s} {'steps':>5s} {'(a) dlpy':>9s} {'(b) DL':>8s} {'(c) min':>8s}"
    print(f"{header} {'a/b':>5s} {'a/c':>5s} {'GFLOP/s':>8s} {'of peak':>7s}")
    for name in names:
        a = us_per_sample(name, "dlpy")
        c = us_per_sample(name, "tensors")
        b = us_per_sample(name, "dataloader") if "dataloader" in ways else float("nan")
        a_b = ratio(name, "dataloader") if "dataloader" in ways else float("nan")
        flops = results[name, "tensors"][0]["flops_per_sample"]
        achieved = flops / (a * 1e-6)
        print(
            f"{name:16s} {NETWORKS[name].steps:5d} {a:9.1f} {b:8.1f} {c:8.1f} "
            f"{a_b:5.2f} {ratio(name, 'tensors'):5.2f} {achieved / 1e9:8.1f} {achieved / peak:7.1%}"
        )
    print("targets: a/c <= 1.03 on every network, a/b <= 0.65 on every convnet")
    if args.also:
        print()
        print("variants of (a): time per sample against (a)'s, below 1 is faster")
        print(f"{'network':16s} " + " ".join(f"{way:>28s}" for way in args.also))
        for name in names:
            cells = " ".join(f"{ratio(name, 'dlpy', way):28.2f}" for way in args.also)
            print(f"{name:16s} {cells}")
    print()
    torch_s = statistics.median(startup["python -c 'import torch'"])
    for key, times in startup.items():
        seconds = statistics.median(times)
        print(f"{key:28s} {seconds:5.2f} s  ({seconds / torch_s:.2f}x import torch)")


if __name__ == "__main__":
    main()
