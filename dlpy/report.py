"""`dlpy report <sweep dir>`: every job's overrides and final numbers, and their mean and spread over seeds.

A job is a folder holding .hydra/overrides.yaml; its numbers come from metrics.json. Jobs are grouped
by the overrides that vary across the sweep, seed aside, and the groups are ranked by the monitored
metric (trainer.monitor and trainer.mode of the jobs' config), best first. A job whose status is not
`finished` (failed, diverged, interrupted, or no metrics.json at all: killed or still running) is
listed with its error line and left out of the means.
"""

import csv
import io
import json
import math
import statistics
from collections import Counter
from pathlib import Path

import yaml

from dlpy.errors import DlpyError

SCORES = (
    "test/",
    "val/",
    "eval/",
)  # final numbers worth comparing; fold<k>/... of K-fold runs are left out


def read_jobs(sweep_dir):
    jobs = []
    for record in sorted(Path(sweep_dir).glob("**/.hydra/overrides.yaml")):
        folder = record.parent.parent
        overrides = dict(
            o.lstrip("+~").split("=", 1)
            for o in yaml.safe_load(record.read_text()) or []
            if "=" in o
        )
        metrics_file = folder / "metrics.json"
        try:
            metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        except ValueError:
            metrics = {"status": "unreadable", "error": f"{metrics_file} is not JSON"}
        config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text()) or {}
        trainer = config.get("trainer") or {}
        jobs.append(
            {
                "folder": folder.relative_to(sweep_dir).as_posix() or ".",
                "overrides": overrides,
                "status": metrics.get("status", "unfinished"),
                "error": metrics.get("error", ""),
                "scores": {
                    k: v for k, v in metrics.items() if k.startswith(SCORES) and is_number(v)
                },
                "monitor": (trainer.get("monitor"), trainer.get("mode", "max")),
            }
        )
    if not jobs:
        raise DlpyError(
            f"{sweep_dir}: no job folders (<job>/.hydra/overrides.yaml) in it; is it a sweep folder "
            "(outputs/multirun/<date>/<time>)?"
        )
    return jobs


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summarize(jobs):
    """(varying keys, metric names, monitor, mode, groups best first); a group is its overrides and jobs."""
    keys = sorted(
        k
        for k in {k for job in jobs for k in job["overrides"]}
        if len({job["overrides"].get(k) for job in jobs}) > 1
    )
    group_keys = [k for k in keys if k != "seed"]
    finished = [job for job in jobs if job["status"] == "finished"]
    metrics = sorted(
        {k for job in finished for k in job["scores"]},
        key=lambda k: (SCORES.index(k[: k.index("/") + 1]), k),
    )
    monitor, mode = Counter(job["monitor"] for job in jobs).most_common(1)[0][0]
    groups = {}
    for job in jobs:
        groups.setdefault(tuple(job["overrides"].get(k, "") for k in group_keys), []).append(job)

    def rank(item):
        values = [
            job["scores"][monitor]
            for job in item[1]
            if job["status"] == "finished" and monitor in job["scores"]
        ]
        if not values:
            return (1, 0.0)
        return (0, -statistics.fmean(values) if mode == "max" else statistics.fmean(values))

    return keys, group_keys, metrics, monitor, sorted(groups.items(), key=rank)


def mean_std(values):
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def tables(jobs):
    """The grouped rows and the per-job rows, as lists of dicts (the CSV files' contents)."""
    keys, group_keys, metrics, monitor, groups = summarize(jobs)
    grouped = []
    for values, members in groups:
        done = [job for job in members if job["status"] == "finished"]
        row = dict(zip(group_keys, values, strict=False)) | {
            "runs": len(done),
            "not_finished": len(members) - len(done),
        }
        for metric in metrics:
            row[f"{metric} mean"], row[f"{metric} std"] = mean_std(
                [j["scores"][metric] for j in done if metric in j["scores"]]
            )
        grouped.append(row)
    per_job = [
        {
            "folder": job["folder"],
            **{k: job["overrides"].get(k, "") for k in keys},
            "status": job["status"],
            **{m: job["scores"].get(m) for m in metrics},
            "error": job["error"],
        }
        for job in jobs
    ]
    return grouped, per_job, group_keys, metrics, monitor


def number(value):
    return "" if value is None else f"{value:.4f}"


def markdown(header, rows):
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def render(sweep_dir, jobs):
    grouped, per_job, group_keys, metrics, monitor = tables(jobs)
    done = sum(job["status"] == "finished" for job in jobs)
    parts = [f"sweep {sweep_dir}: {len(jobs)} jobs, {done} finished"]
    best = Path(sweep_dir) / "optimization_results.yaml"  # written by the Optuna sweeper
    if best.is_file():
        result = yaml.safe_load(best.read_text()) or {}
        parts.append(
            f"Optuna: best value {result.get('best_value')} with {result.get('best_params')}"
        )
    parts.append(f"\nBy configuration, mean ± std over the runs (seeds), best {monitor} first:\n")
    parts.append(
        markdown(
            group_keys + ["runs"] + metrics,
            [
                [row[k] for k in group_keys]
                + [
                    f"{row['runs']}"
                    + (f" ({row['not_finished']} not finished)" if row["not_finished"] else "")
                ]
                + [
                    number(row[f"{m} mean"])
                    + (f" ± {row[f'{m} std']:.4f}" if row[f"{m} std"] is not None else "")
                    for m in metrics
                ]
                for row in grouped
            ],
        )
    )
    keys = [k for k in per_job[0] if k not in ("folder", "status", "error", *metrics)]
    parts.append("\nEvery job:\n")
    parts.append(
        markdown(
            ["folder", *keys, "status", *metrics],
            [
                [
                    row["folder"],
                    *(row[k] for k in keys),
                    row["status"],
                    *(number(row[m]) for m in metrics),
                ]
                for row in per_job
            ],
        )
    )
    failed = [row for row in per_job if row["status"] != "finished"]
    if failed:
        parts.append("\nNot finished:\n")
        parts.append(
            markdown(
                ["folder", "status", "error"],
                [[r["folder"], r["status"], r["error"]] for r in failed],
            )
        )
    return "\n".join(parts) + "\n", grouped, per_job


def write_csv(rows, path):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(
        out.getvalue()
    )  # derived from the job folders: `dlpy report` writes it again at will


def write_report(sweep_dir):
    """Write <sweep>/report.csv (the groups) and <sweep>/jobs.csv (every job); return the Markdown report."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise DlpyError(f"dlpy report: {sweep_dir} is not a folder")
    text, grouped, per_job = render(sweep_dir, read_jobs(sweep_dir))
    write_csv(grouped, sweep_dir / "report.csv")
    write_csv(per_job, sweep_dir / "jobs.csv")
    return text
