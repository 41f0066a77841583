"""fp32 against bf16 autocast on every Fashion-MNIST preset: test accuracy and training time.

Each preset trains to the end once per precision and seed, as a user runs it (a subprocess each,
fp32 and bf16 of a seed one after the other), and the table gives the mean test accuracy over the
seeds, the difference in points, the largest seed-to-seed spread of either precision and the time
per epoch. bf16 can become dlpy's default only where every preset stays within 0.3 points of
fp32; a difference smaller than the spread between seeds is the seeds' doing, not bf16's.

    python scripts/benchmark_precision.py [--presets default,mlp] [--seeds 3] [override ...]

Extra overrides go to every run (trainer.threads=1 to measure on one core).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PRESETS = {
    "default": [],  # dlpy train: the small CNN, 3 epochs
    "mlp": ["experiment=fashion_mnist_mlp"],
    "cnn": ["experiment=fashion_mnist_cnn"],
    "resnet20": ["experiment=fashion_mnist_resnet20"],
    "densenet_bc": ["experiment=fashion_mnist_densenet_bc"],
    "multi_head": ["experiment=fashion_mnist_multi_head"],
    "siamese": ["experiment=fashion_mnist_siamese"],
}
# The accuracy each preset is judged by: the multi-head network's class head is the one that
# fashion_mnist_cnn is compared with (its group head is the extra); the rest report test/acc.
ACCURACY = {"multi_head": "test/class/acc"}
PRECISIONS = ("fp32", "bf16")


def train(preset: str, precision: str, seed: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as run:
        command = [sys.executable, "-m", "dlpy", "train", *PRESETS[preset], *extra]
        command += [f"trainer.precision={precision}", f"seed={seed}", f"hydra.run.dir={run}"]
        subprocess.run(command + ["~callbacks.progress_bar"], check=True, capture_output=True)
        return json.loads((Path(run) / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1 per precision")
    parser.add_argument("extra", nargs="*", help="overrides for every run")
    args = parser.parse_args()
    print(f"{'preset':10s} {'fp32 acc':>9s} {'bf16 acc':>9s} {'diff':>6s} {'spread':>7s}", end="")
    print(f" {'fp32 s/ep':>10s} {'bf16 s/ep':>10s} {'speed-up':>9s}", flush=True)
    for preset in args.presets.split(","):
        runs = {p: [] for p in PRECISIONS}
        for seed in range(args.seeds):
            for precision in PRECISIONS:
                runs[precision].append(train(preset, precision, seed, args.extra))
        key = ACCURACY.get(preset, "test/acc")
        accs = {p: [100 * run[key] for run in runs[p]] for p in PRECISIONS}
        acc = {p: statistics.mean(accs[p]) for p in PRECISIONS}
        spread = max(max(accs[p]) - min(accs[p]) for p in PRECISIONS)
        epoch_s = {
            p: statistics.median(run["time/train_s"] / run["epochs"] for run in runs[p])
            for p in PRECISIONS
        }
        print(
            f"{preset:10s} {acc['fp32']:9.2f} {acc['bf16']:9.2f} {acc['bf16'] - acc['fp32']:+6.2f}"
            f" {spread:7.2f} {epoch_s['fp32']:10.1f} {epoch_s['bf16']:10.1f}"
            f" {epoch_s['fp32'] / epoch_s['bf16']:8.2f}x",
            flush=True,
        )
        for precision in PRECISIONS:
            print(f"  {precision} per seed: " + ", ".join(f"{a:.2f}" for a in accs[precision]))


if __name__ == "__main__":
    main()
