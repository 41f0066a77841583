"""Wall time of a 4-job sweep of 1-epoch MLP runs, one job after another, and with joblib.

    python scripts/benchmark_sweep.py [--repeat N] [--data-dir DIR] [override ...]

Each sweep is the command as a user types it (a subprocess each), on Fashion-MNIST (the default data
set), in a fresh folder:

    serial:    dlpy train -m model=mlp trainer.max_epochs=1 seed=0,1,2,3
    serial/1:  the same with trainer.threads=1: the joblib jobs themselves, one after another
    parallel:  dlpy train -m model=mlp trainer.max_epochs=1 seed=0,1,2,3 launcher=joblib

The serial sweep runs its jobs in one process with torch's default threads (one per core); the
joblib launcher runs one job per core with one torch thread each. The three run in turn, --repeat
times (default 3), and the script prints each one's median wall time and the medians of the paired
ratios parallel / serial (the target: at most 0.8 on 2 cores) and parallel / serial-1. Extra
overrides go to every sweep (a quick check on tiny data: --data-dir <folder> trainer=debug).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from operator import truediv
from pathlib import Path

SWEEP = [
    "train",
    "-m",
    "model=mlp",
    "trainer.max_epochs=1",
    "seed=0,1,2,3",
    "~callbacks.progress_bar",
]


def prepare_data(data_dir, overrides):
    """Read the data once before timing, so no sweep pays for unpacking the files into data_dir."""
    from hydra import compose, initialize_config_dir

    from dlpy import CONF_DIR
    from dlpy.build import build_data

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        build_data(compose("train", [*([f"data_dir={data_dir}"] if data_dir else []), *overrides]))


def timed_sweep(extra, data_dir):
    """Seconds the whole sweep took, after checking that its four jobs finished."""
    env = {**os.environ, **({"DLPY_DATA_DIR": str(Path(data_dir).resolve())} if data_dir else {})}
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dlpy", *SWEEP, *extra],
            cwd=cwd,
            env=env,
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
        jobs = list(Path(cwd).glob("outputs/multirun/*/*/seed=*/metrics.json"))
        status = [json.loads(job.read_text())["status"] for job in jobs]
        if status != ["finished"] * 4:
            raise SystemExit(f"the sweep {' '.join(extra)} did not finish its 4 jobs: {status}")
    return seconds


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of the three sweeps (default 3)"
    )
    parser.add_argument(
        "--data-dir", help="data folder (default: dlpy's, then /usr/share/datasets)"
    )
    parser.add_argument("overrides", nargs="*", help="extra overrides for every sweep")
    args = parser.parse_args()
    prepare_data(args.data_dir, args.overrides)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    sweeps = {
        "one after another": [],
        "one after another, 1 thread each": [],
        "joblib launcher (parallel)": [],
    }
    extras = ([], ["trainer.threads=1"], ["launcher=joblib"])
    for _ in range(
        args.repeat
    ):  # in turn, so a drift in the machine's speed touches all three alike
        for times, extra in zip(sweeps.values(), extras, strict=False):
            times.append(timed_sweep([*args.overrides, *extra], args.data_dir))
    serial, serial_1, parallel = sweeps.values()
    print(f"4 jobs, {cores} cores, median of {args.repeat} rounds")
    for name, times in sweeps.items():
        each = " ".join(f"{t:.1f}" for t in times)
        print(f"{name + ':':34} {statistics.median(times):6.1f} s   ({each})")
    ratio = statistics.median(map(truediv, parallel, serial))
    print(f"ratio parallel / serial:           {ratio:6.2f}   (target: at most 0.8 on 2 cores)")
    ratio_1 = statistics.median(map(truediv, parallel, serial_1))
    print(f"ratio parallel / serial, 1 thread: {ratio_1:6.2f}")


if __name__ == "__main__":
    main()
