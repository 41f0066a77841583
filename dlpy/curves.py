"""`dlpy plot <run dir | sweep dir> [metric=...]`: learning curves from history.csv, as PNGs.

A run: each metric's training curve against its validation curve, epoch by epoch, as Chollet
draws them ("Training and validation loss", Deep Learning with Python, ch. 4-5). A sweep: one curve
per configuration, its jobs grouped by their overrides minus the seed as `dlpy report` groups
them, the mean over seeds with a shaded 95% bootstrap confidence interval of that mean, as
rliable's and rl-baselines3-zoo's plots draw theirs.

history.csv itself (one row per epoch; dlpy/callbacks/history.py writes it) is read and written
here too; matplotlib is imported only to draw, so a training run does without it.
"""

import csv
import io
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dlpy.errors import DlpyError
from dlpy.io import atomic_write
from dlpy.report import config_name, read_jobs, summarize

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FILE = "history.csv"
FIRST = ["epoch", "step", "time"]  # the columns every row begins with; no metric of their own
ROLES = ("train", "val")  # a metric's curves: prefixes paired by what follows them
LABELS = {"train": "Training", "val": "Validation", None: ""}
RESAMPLES = 2000  # bootstrap resamples of the seeds, per epoch
Row = dict[str, Any]


def read_history(path: str | Path) -> list[Row]:
    """The rows of a history.csv as strings (empty cells left out); [] when there is none."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [{k: v for k, v in row.items() if v != ""} for row in csv.DictReader(io.StringIO(text))]


def write_history(rows: list[Row], path: str | Path) -> None:
    """Rows as CSV, atomically: the columns are every key of any row, an absent value empty."""
    columns = list(dict.fromkeys(FIRST + [k for row in rows for k in row]))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda f: f.write(out.getvalue().encode()))


def curves_of(rows: list[Row]) -> dict[str, list[str]]:
    """{metric: its columns}: `loss` -> [train/loss, val/loss]; a column with no partner alone."""
    metrics = {}
    for column in dict.fromkeys(k for row in rows for k in row):
        if column in FIRST:
            continue
        role, _, rest = column.partition("/")
        metrics.setdefault(rest if role in ROLES and rest else column, []).append(column)
    return metrics


def chosen(metrics: dict[str, list[str]], metric: str | None, where: Path) -> dict[str, list[str]]:
    """The metrics to draw: all, or the one named (a metric such as `loss`, or one column)."""
    if metric is None:
        return metrics
    if metric in metrics:
        return {metric: metrics[metric]}
    if any(metric in columns for columns in metrics.values()):
        return {metric: [metric]}  # one column, under its own name
    known = ", ".join(sorted(metrics)) or "none"
    raise DlpyError(f"metric={metric}: {where} has no such curve; the known metrics: {known}")


def values(rows: list[Row], column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the rows that have the column."""
    kept = [row for row in rows if column in row]
    epochs = np.array([float(row["epoch"]) for row in kept])
    return epochs, np.array([float(row[column]) for row in kept])


def mean_interval(
    runs: list[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """(epochs, mean, low, high) over runs: the mean per epoch of the runs that reached it, and
    the 2.5 and 97.5 percentiles of the means of RESAMPLES bootstrap resamples of those runs
    (Efron's percentile interval; one run: no width)."""
    epochs = np.unique(np.concatenate([e for e, _ in runs]))
    means = []
    lows = []
    highs = []
    for epoch in epochs:
        at = np.array([v[e == epoch][0] for e, v in runs if (e == epoch).any()])
        resampled = rng.choice(at, size=(RESAMPLES, len(at))).mean(axis=1)
        low, high = np.percentile(resampled, [2.5, 97.5])
        means.append(at.mean())
        lows.append(low)
        highs.append(high)
    return epochs, np.array(means), np.array(lows), np.array(highs)


def file_name(metric: str) -> str:
    """`loss/d` -> loss_d: a metric's PNG name."""
    return re.sub(r"[^\w.-]", "_", metric)


def figure(columns: int) -> tuple[Any, list["Axes"]]:
    """A figure of `columns` axes side by side, drawn off screen."""
    from dlpy.figures import new_figure  # matplotlib, imported only to draw

    fig = new_figure(6.4 * columns, 4.8)
    return fig, list(np.atleast_1d(fig.subplots(1, columns)))


def label_axes(ax: "Axes", title: str, metric: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    ax.set_title(title)
    ax.set_xlabel("Epochs")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    entries = len(ax.get_legend_handles_labels()[1])
    ax.legend(fontsize="small", ncols=1 + entries // 12)  # a big sweep's legend in columns


def plot_run(run_dir: Path, metric: str | None) -> list[Path]:
    """A PNG per metric in <run>/plots/: its training curve (dots) against its validation one
    (line), as Chollet's figures draw them."""
    rows = read_history(run_dir / FILE)
    paths = []
    for name, columns in chosen(curves_of(rows), metric, run_dir / FILE).items():
        fig, (ax,) = figure(1)
        for column in columns:
            role = column.partition("/")[0] if column != name else None
            epochs, ys = values(rows, column)
            style = "o" if role == "train" or len(epochs) == 1 else "-"  # Chollet's "bo" and "b"
            ax.plot(epochs, ys, style, color="C0", label=LABELS.get(role) or column)
        words = " and ".join(LABELS[c.partition("/")[0]].lower() for c in columns if c != name)
        label_axes(ax, f"{words.capitalize()} {name}" if words else name, name)
        paths.append(save(fig, run_dir / "plots" / f"{file_name(name)}.png"))
    return paths


def sweep_histories(sweep_dir: Path) -> list[tuple[str, list[list[Row]]]]:
    """(configuration name, the history of each of its jobs), best configuration first."""
    summary = summarize(read_jobs(sweep_dir))
    configs = []
    for key_values, jobs in summary.groups:
        histories = [read_history(sweep_dir / job["folder"] / FILE) for job in jobs]
        if any(histories):
            configs.append(
                (config_name(summary.group_keys, key_values), [h for h in histories if h])
            )
    if not configs:
        raise DlpyError(f"{sweep_dir}: no job has a {FILE} (runs made before dlpy wrote it?)")
    return configs


def plot_sweep(sweep_dir: Path, metric: str | None) -> list[Path]:
    """A PNG per metric in <sweep>/plots/: its training and validation curves side by side, one
    curve per configuration, the mean over its seeds in a shaded 95% interval."""
    configs = sweep_histories(sweep_dir)
    every_row = [row for _, histories in configs for rows in histories for row in rows]
    paths = []
    for name, columns in chosen(curves_of(every_row), metric, sweep_dir).items():
        fig = sweep_figure(configs, name, columns)
        paths.append(save(fig, sweep_dir / "plots" / f"{file_name(name)}.png"))
    return paths


def sweep_figure(configs: list[tuple[str, list[list[Row]]]], name: str, columns: list[str]) -> Any:
    """One metric of a sweep: an axes per column, a mean curve and band per configuration."""
    rng = np.random.default_rng(0)  # the same bands every time the plot is drawn
    fig, axes = figure(len(columns))
    for ax, column in zip(axes, columns, strict=True):
        for config, histories in configs:
            runs = [values(rows, column) for rows in histories if any(column in r for r in rows)]
            if not runs:
                continue
            epochs, mean, low, high = mean_interval(runs, rng)
            label = f"{config} ({len(runs)} runs)"
            line = ax.plot(epochs, mean, marker="o", markersize=3, label=label)[0]
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
        role = column.partition("/")[0] if column != name else None
        title = f"{LABELS[role]} {name}".strip() + ": mean and 95% CI over seeds"
        label_axes(ax, title, column)
    return fig


def save(fig: Any, path: Path) -> Path:
    """The figure as a PNG, written atomically; its path."""
    from dlpy.figures import save_figure  # matplotlib, imported only to draw

    save_figure(fig, path)
    return path


def plot_command(args: list[str]) -> None:
    """`dlpy plot <run dir | sweep dir> [metric=...]`: write the PNGs and print their paths."""
    usage = "usage: dlpy plot <run dir | sweep dir> [metric=<name>]"
    folders = [a for a in args if not a.startswith("metric=")]
    metrics = [a.partition("=")[2] for a in args if a.startswith("metric=")]
    if len(folders) != 1 or folders[0].startswith("-") or len(metrics) > 1:
        raise DlpyError(usage)
    folder = Path(folders[0])
    if not folder.is_dir():
        raise DlpyError(f"dlpy plot: {folder} is not a folder; {usage}")
    metric = metrics[0] if metrics else None
    run = (folder / FILE).is_file()
    for path in plot_run(folder, metric) if run else plot_sweep(folder, metric):
        print(path)
