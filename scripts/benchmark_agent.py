"""Env steps the default agent needs to solve CartPole-v1, seed by seed.

    python scripts/benchmark_agent.py [--seeds 1-10] [--out DIR] [override ...]

Each seed is `dlpy train model=reinforce dataset=cartpole seed=N` as a user types it (a subprocess
each, one after another, so that runs never share a core), in DIR/<seed> (default: a temporary
folder). Extra overrides go to every run (`model.task.advantage=a2c`, `dataset=acrobot`). The
script prints the seeds' table as docs/results.md shows it (episodes, env steps, wall time of the
whole process, greedy eval return) with the median and the maximum; a seed that was not solved
within the budget (`model.task.max_env_steps`) is marked.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUN = ["train", "model=reinforce", "dataset=cartpole", "~callbacks.progress_bar"]


def parse_seeds(text: str) -> list[int]:
    """'1-10' or '1,3,5' (or both: '1-3,7') as a list of seeds."""
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def run_seed(seed: int, folder: Path, overrides: list[str]) -> dict:
    """One run's metrics.json, with the wall time of its whole process (start-up included)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dlpy", *RUN, f"seed={seed}", f"hydra.run.dir={folder}", *overrides],
        check=True,
        capture_output=True,
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics | {"wall_s": time.perf_counter() - start}


def table(rows: dict[int, dict]) -> str:
    """The Markdown table of docs/results.md, with the median and maximum of the env steps."""
    lines = ["| seed | episodes | env steps | wall time | greedy eval (20 episodes) |"]
    lines.append("|---|---|---|---|---|")
    for seed, m in rows.items():
        steps = f"{m['env_steps']:,}" + ("" if m["solved"] else " (not solved)")
        lines.append(
            f"| {seed} | {m['episodes']} | {steps} | {m['wall_s']:.1f} s | "
            f"{m['eval/return_mean']:g} |"
        )
    steps = [m["env_steps"] for m in rows.values()]
    walls = [m["wall_s"] for m in rows.values()]
    lines.append(
        f"| median | | {statistics.median(steps):,.0f} | {statistics.median(walls):.1f} s | |"
    )
    lines.append(f"| max | | {max(steps):,} | {max(walls):.1f} s | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="1-10", help="'1-10' or '1,3,5' (default 1-10)")
    parser.add_argument("--out", help="keep the runs in OUT/<seed> (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        rows = {}
        for seed in parse_seeds(args.seeds):
            rows[seed] = run_seed(seed, out / str(seed), args.overrides)
            m = rows[seed]
            print(f"seed {seed}: {m['env_steps']:,} env steps, solved {m['solved']}", flush=True)
    print(table(rows))
    unsolved = sum(not m["solved"] for m in rows.values())
    print(f"{len(rows) - unsolved} of {len(rows)} seeds solved")


if __name__ == "__main__":
    main()
