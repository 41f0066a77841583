"""Wall time of a 4-job sweep of 1-epoch MLP runs, one job after another and with the joblib launcher.

    python scripts/benchmark_sweep.py [--data-dir DIR] [override ...]

Both sweeps are the same command as a user types it (a subprocess each), on Fashion-MNIST (the default
data set), in a fresh folder:

    serial:   dlpy train -m model=mlp trainer.max_epochs=1 seed=0,1,2,3
    parallel: dlpy train -m model=mlp trainer.max_epochs=1 seed=0,1,2,3 launcher=joblib

The serial sweep runs its jobs in one process with torch's default threads (one per core); the joblib
launcher runs one job per core with one torch thread each. The script prints both wall times and their
ratio (parallel / serial); on 2 cores it should be at most 0.7. Extra overrides go to both sweeps
(a quick check on tiny data: --data-dir <folder> trainer=debug).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["train", "-m", "model=mlp", "trainer.max_epochs=1", "seed=0,1,2,3", "trainer.progress_bar=false"]


def prepare_data(data_dir, overrides):
    """Read the data once before timing, so neither sweep pays for unpacking the files into the data folder."""
    from hydra import compose, initialize_config_dir

    from dlpy import CONF_DIR
    from dlpy.train import build_data

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        build_data(compose("train", [*([f"data_dir={data_dir}"] if data_dir else []), *overrides]))


def timed_sweep(extra, data_dir):
    """Seconds the whole sweep took, after checking that its four jobs finished."""
    env = {**os.environ, **({"DLPY_DATA_DIR": str(Path(data_dir).resolve())} if data_dir else {})}
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlpy", *SWEEP, *extra], cwd=cwd, env=env, check=True,
                       capture_output=True)
        seconds = time.perf_counter() - start
        jobs = list(Path(cwd).glob("outputs/multirun/*/*/seed=*/metrics.json"))
        status = [json.loads(job.read_text())["status"] for job in jobs]
        if status != ["finished"] * 4:
            raise SystemExit(f"the sweep {' '.join(extra)} did not finish its 4 jobs: {status}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data folder (default: dlpy's, then /usr/share/datasets)")
    parser.add_argument("overrides", nargs="*", help="extra overrides for both sweeps")
    args = parser.parse_args()
    prepare_data(args.data_dir, args.overrides)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    serial = timed_sweep(args.overrides, args.data_dir)
    parallel = timed_sweep([*args.overrides, "launcher=joblib"], args.data_dir)
    print(f"4 jobs, {cores} cores")
    print(f"one after another:           {serial:7.1f} s")
    print(f"joblib launcher (parallel):  {parallel:7.1f} s")
    print(f"ratio parallel / serial:     {parallel / serial:7.2f}  (target: at most 0.7 on 2 cores)")


if __name__ == "__main__":
    main()
