"""torch.compile against eager, per network of scripts/benchmark.py: does compiling pay?

A compiled network pays its compilation once, at its first steps, and then may step faster. For
each network this times, in a fresh process per measurement, interleaved (eager, compiled, eager,
...), the same minimal loop as benchmark.py's (c): the first `--warmup` steps (which hold the
compilation) and the median of the next `--steps` steps. It prints the steady speed-up and the
break-even point: how many steps a run needs before the compiled one has caught up.

    python scripts/benchmark_compile.py [--networks mlp,cnn] [--repeats 3] [--steps 40]
                                        [override ...]

torch.compile caches its kernels on disk (/tmp/torchinductor_$USER): the first repeat compiles
from nothing, later ones may hit the cache, as a user's second run does; the table gives both.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import benchmark  # noqa: E402  (the networks and loops are benchmark.py's)


def measure(name: str, compiled: bool, warmup: int, steps: int, extra: list[str]) -> dict:
    """In this process: the seconds of the first `warmup` steps, and the median of `steps` more."""
    import torch

    from dlpy.build import build_data, build_task
    from dlpy.precision import resolve_device

    cfg = benchmark.compose(name, extra)
    device = resolve_device(cfg.trainer.device)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    torch.manual_seed(0)
    data = build_data(cfg).to(device)
    layout = torch.channels_last if cfg.trainer.channels_last else torch.contiguous_format
    task = build_task(cfg)
    net = task.net.to(device, memory_format=layout)
    factory = task.optimizer_factory
    opt = factory.func(net.parameters(), **factory.keywords)
    if compiled:
        net.compile()
    x = data.normalize(data.train.x)
    y = data.train.y
    batch = cfg.dataset.batch_size
    kind = benchmark.NETWORKS[name].loss

    def step(i: int) -> float:
        rows = torch.arange(i * batch, (i + 1) * batch, device=device) % len(y)
        xb = x.index_select(0, rows)
        if xb.ndim == 4:
            xb = xb.contiguous(memory_format=layout)
        start = time.perf_counter()
        loss = benchmark.loss_of(kind, net, xb, y.index_select(0, rows))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = sum(step(i) for i in range(warmup))
    times = [step(warmup + i) for i in range(steps)]
    return {"warmup_s": first, "step_s": statistics.median(times), "batch": batch}


def in_process(name: str, compiled: bool, args, extra: list[str]) -> dict:
    command = [sys.executable, __file__, "--child", "compiled" if compiled else "eager"]
    command += ["--networks", name, "--warmup", str(args.warmup), "--steps", str(args.steps)]
    done = subprocess.run([*command, "--", *extra], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(benchmark.NETWORKS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="steps holding the compilation")
    parser.add_argument("--steps", type=int, default=40, help="steady steps timed")
    parser.add_argument("--child", choices=("eager", "compiled"), help=argparse.SUPPRESS)
    parser.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = args.networks.split(",")
    for name in names:
        if name not in benchmark.NETWORKS:
            parser.error(f"--networks: unknown network {name!r}")
    if args.child:
        result = measure(names[0], args.child == "compiled", args.warmup, args.steps, args.extra)
        print(json.dumps(result))
        return

    runs = {(name, mode): [] for name in names for mode in (False, True)}
    for repeat in range(args.repeats):
        for name in names:
            for compiled in (False, True):  # interleaved: eager, compiled, next network, ...
                result = in_process(name, compiled, args, args.extra)
                runs[name, compiled].append(result)
                label = "compiled" if compiled else "eager"
                print(
                    f"  repeat {repeat + 1} {name:16s} {label:8s} first {args.warmup} steps "
                    f"{result['warmup_s']:6.2f} s, then {1e3 * result['step_s']:7.2f} ms/step",
                    flush=True,
                )

    print()
    print(f"medians of {args.repeats} interleaved repeats, {args.steps} steady steps each")
    print(
        f"{'network':16s} {'eager ms':>9s} {'compiled':>9s} {'speed-up':>8s} "
        f"{'compile s (1st)':>15s} {'compile s (later)':>17s} {'break-even steps':>16s}"
    )
    for name in names:
        eager = statistics.median(r["step_s"] for r in runs[name, False])
        fast = statistics.median(r["step_s"] for r in runs[name, True])
        eager_warm = statistics.median(r["warmup_s"] for r in runs[name, False])
        first = runs[name, True][0]["warmup_s"] - eager_warm  # compiled from nothing
        later = statistics.median(r["warmup_s"] for r in runs[name, True][1:] or runs[name, True])
        later -= eager_warm
        gain = eager - fast
        even = f"{later / gain:16.0f}" if gain > 0 else f"{'never':>16s}"
        print(
            f"{name:16s} {1e3 * eager:9.2f} {1e3 * fast:9.2f} {eager / fast:8.2f} "
            f"{first:15.1f} {later:17.1f} {even}"
        )


if __name__ == "__main__":
    main()
