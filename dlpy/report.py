"""`dlpy report <sweep dir>`: each job's overrides and final numbers, and their spread over seeds.

A job is a folder holding .hydra/overrides.yaml; its numbers come from metrics.json. Jobs are
grouped by the overrides that vary across the sweep, seed aside (a group's `config` column names
them in one short string, as `dlpy plot` labels its curves), and the groups are ranked by the
monitored metric (trainer.monitor and trainer.mode of the jobs' config), best first. A job whose
status is not `finished` (failed, diverged, interrupted, or no metrics.json at all: killed or
still running) is listed with its error line and left out of the means.
"""

import csv
import io
import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from dlpy.errors import DlpyError

# Final numbers worth comparing, in the order of the columns; the fold<k>/... numbers of
# K-fold runs are left out.
SCORES = ("test/", "val/", "eval/", "model/")
# Of the model's sizes (dlpy/summary.py), the two that set size against accuracy
SIZES = ("model/params", "model/flops_per_sample")

Job = dict  # folder, overrides, status, error, scores, monitor: as read_job makes it
Row = dict  # one line of a CSV file: column -> value


def read_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder under the sweep folder, in sorted order."""
    records = sorted(Path(sweep_dir).glob("**/.hydra/overrides.yaml"))
    jobs = [read_job(record.parent.parent, sweep_dir) for record in records]
    if not jobs:
        raise DlpyError(
            f"{sweep_dir}: no job folders (<job>/.hydra/overrides.yaml) in it; is it a sweep "
            "folder (outputs/multirun/<date>/<time>)?"
        )
    return jobs


def read_job(folder: Path, sweep_dir: Path) -> Job:
    """A job's overrides, its status and final numbers, and the metric its config monitors."""
    lines = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text()) or []
    overrides = dict(o.lstrip("+~").split("=", 1) for o in lines if "=" in o)
    metrics = read_metrics(folder / "metrics.json")
    config = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text()) or {}
    trainer = config.get("trainer") or {}
    scores = {k: v for k, v in metrics.items() if is_score(k) and is_number(v)}
    return {
        "folder": folder.relative_to(sweep_dir).as_posix() or ".",
        "overrides": overrides,
        "status": metrics.get("status", "unfinished"),
        "error": metrics.get("error", ""),
        "scores": scores,
        "monitor": (trainer.get("monitor"), trainer.get("mode", "max")),
    }


def read_metrics(path: Path) -> dict:
    """metrics.json; {} when there is none (the job was killed or still runs)."""
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {"status": "unreadable", "error": f"{path} is not JSON"}


def is_score(key: str) -> bool:
    """A final number the report compares: an evaluation's, or one of the model's sizes."""
    return key.startswith(SCORES[:-1]) or key in SIZES


def config_name(keys: list[str], values: tuple[str, ...]) -> str:
    """`model=mlp,lr=0.001`: a configuration, named by its overrides that vary but the seed.

    A key is shortened to its last part where no other key ends the same; "all" names the one
    configuration of a sweep over seeds alone.
    """
    last = [key.rsplit(".", 1)[-1] for key in keys]
    short = [end if last.count(end) == 1 else key for key, end in zip(keys, last, strict=True)]
    pairs = [f"{k}={v}" for k, v in zip(short, values, strict=True) if v != ""]
    return ",".join(pairs) or "all"


def is_number(value: object) -> bool:
    """A finite int or float; a bool is not a number here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Summary:
    """What the tables show: the columns, and the groups of jobs best first."""

    keys: list[str]  # the overrides that vary across the sweep
    group_keys: list[str]  # the same but seed: what the jobs of a group share
    metrics: list[str]
    monitor: str | None
    groups: list[tuple[tuple[str, ...], list[Job]]]  # (values of group_keys, jobs)


def summarize(jobs: list[Job]) -> Summary:
    """The varying overrides and the metrics, and the jobs grouped, best monitored mean first."""
    every_key = {k for job in jobs for k in job["overrides"]}
    keys = sorted(k for k in every_key if len({job["overrides"].get(k) for job in jobs}) > 1)
    group_keys = [k for k in keys if k != "seed"]
    finished = [job for job in jobs if job["status"] == "finished"]
    metrics = sorted(
        {k for job in finished for k in job["scores"]},
        key=lambda k: (SCORES.index(k[: k.index("/") + 1]), k),
    )
    monitor, mode = Counter(job["monitor"] for job in jobs).most_common(1)[0][0]
    groups = {}
    for job in jobs:
        groups.setdefault(job_values(job, group_keys), []).append(job)

    def rank(item):
        values = [
            job["scores"][monitor]
            for job in item[1]
            if job["status"] == "finished" and monitor in job["scores"]
        ]
        if not values:
            return (1, 0.0)  # groups without the number come last
        return (0, -statistics.fmean(values) if mode == "max" else statistics.fmean(values))

    return Summary(keys, group_keys, metrics, monitor, sorted(groups.items(), key=rank))


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; None where there are too few values."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def grouped_rows(summary: Summary) -> list[Row]:
    """A row per group: its overrides, how many jobs finished, each metric's mean and std."""
    rows = []
    for values, members in summary.groups:
        done = [job for job in members if job["status"] == "finished"]
        row = {"config": config_name(summary.group_keys, values)}
        row |= dict(zip(summary.group_keys, values, strict=False))
        row["runs"] = len(done)
        row["not_finished"] = len(members) - len(done)
        for metric in summary.metrics:
            row[f"{metric} mean"], row[f"{metric} std"] = mean_std(
                [j["scores"][metric] for j in done if metric in j["scores"]]
            )
        rows.append(row)
    return rows


def job_rows(jobs: list[Job], summary: Summary) -> list[Row]:
    """A row per job: its folder, configuration, varying overrides, status, metrics and error."""
    return [
        {
            "folder": job["folder"],
            "config": config_name(summary.group_keys, job_values(job, summary.group_keys)),
            **{k: job["overrides"].get(k, "") for k in summary.keys},
            "status": job["status"],
            **{m: job["scores"].get(m) for m in summary.metrics},
            "error": job["error"],
        }
        for job in jobs
    ]


def job_values(job: Job, keys: list[str]) -> tuple[str, ...]:
    """The job's values of the overrides `keys` ("" where it has none): its group."""
    return tuple(job["overrides"].get(k, "") for k in keys)


def number(value: float | None, like: float | None = None) -> str:
    """A metric as the tables print it: four decimals, a count (parameters, FLOPs) whole, or
    nothing; `like`: printed as that number would be (a std as its mean)."""
    if value is None:
        return ""
    large = abs(value if like is None else like) >= 10_000
    return f"{value:,.0f}" if large else f"{value:.4f}"


def cell(value: object) -> str:
    """A value as a Markdown table cell: a `|` would end the cell."""
    return str(value).replace("|", "\\|")


def markdown(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows])


def groups_table(grouped: list[Row], summary: Summary) -> str:
    """The groups, each metric as `mean ± std`."""
    rows = []
    for row in grouped:
        runs = f"{row['runs']}"
        if row["not_finished"]:
            runs += f" ({row['not_finished']} not finished)"
        means = []
        for m in summary.metrics:
            std = row[f"{m} std"]
            mean = row[f"{m} mean"]
            spread = f" ± {number(std, like=mean)}" if std is not None else ""
            means.append(number(mean) + spread)
        rows.append([row["config"]] + [row[k] for k in summary.group_keys] + [runs] + means)
    return markdown(["config"] + summary.group_keys + ["runs"] + summary.metrics, rows)


def jobs_table(per_job: list[Row], metrics: list[str]) -> str:
    """Every job, its metrics to four decimals."""
    keys = [k for k in per_job[0] if k not in ("folder", "status", "error", *metrics)]
    rows = [
        [row["folder"], *(row[k] for k in keys), row["status"], *(number(row[m]) for m in metrics)]
        for row in per_job
    ]
    return markdown(["folder", *keys, "status", *metrics], rows)


def render(
    sweep_dir: Path, jobs: list[Job], summary: Summary, grouped: list[Row], per_job: list[Row]
) -> str:
    """The Markdown report: the groups best first, every job, and the jobs that did not finish."""
    done = sum(job["status"] == "finished" for job in jobs)
    parts = [f"sweep {sweep_dir}: {len(jobs)} jobs, {done} finished"]
    best = Path(sweep_dir) / "optimization_results.yaml"  # written by the Optuna sweeper
    if best.is_file():
        result = yaml.safe_load(best.read_text()) or {}
        parts.append(
            f"Optuna: best value {result.get('best_value')} with {result.get('best_params')}"
        )
    parts.append(
        f"\nBy configuration, mean ± std over the runs (seeds), best {summary.monitor} first:\n"
    )
    parts.append(groups_table(grouped, summary))
    parts.append("\nEvery job:\n")
    parts.append(jobs_table(per_job, summary.metrics))
    failed = [row for row in per_job if row["status"] != "finished"]
    if failed:
        parts.append("\nNot finished:\n")
        rows = [[r["folder"], r["status"], r["error"]] for r in failed]
        parts.append(markdown(["folder", "status", "error"], rows))
    return "\n".join(parts) + "\n"


def write_csv(rows: list[Row], path: Path) -> None:
    """Rows as a CSV file, the first row's keys as the header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    # not atomic: derived from the job folders, `dlpy report` writes it again at will
    path.write_text(out.getvalue())


def write_report(sweep_dir: Path | str, jobs: list[Job] | None = None) -> str:
    """Write <sweep>/report.csv (the groups) and <sweep>/jobs.csv (every job); return the report.
    `jobs`: the sweep's, when the caller has read them already."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise DlpyError(f"dlpy report: {sweep_dir} is not a folder")
    jobs = read_jobs(sweep_dir) if jobs is None else jobs
    summary = summarize(jobs)
    grouped = grouped_rows(summary)
    per_job = job_rows(jobs, summary)
    text = render(sweep_dir, jobs, summary, grouped, per_job)
    write_csv(grouped, sweep_dir / "report.csv")
    write_csv(per_job, sweep_dir / "jobs.csv")
    return text
