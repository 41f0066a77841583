"""Is what a loader read fit to train on? The checks every loader makes, each naming the file.

Data that parses can still be wrong, and each kind of wrong surfaces far from its file: a NaN
feature turns every loss it touches into NaN, and the run stops as diverged steps later; arrays of
different lengths pair inputs with the wrong targets (or stop at an index error mid-epoch); an
empty split trains on nothing or reports no test number; a classifier of one class learns a
constant. Each check raises one DlpyError that names the file or folder, before anything trains.
"""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from dlpy.errors import DlpyError

Array = np.ndarray | torch.Tensor


def at(index: tuple[int, ...]) -> str:
    """Where a value sits in an array, for the error: `row 4, column 2`, or `row 4`."""
    names = ("row", "column", "position")
    return ", ".join(f"{names[min(i, 2)]} {k}" for i, k in enumerate(index))


def finite(
    source: str | Path, name: str, values: Array, where: Callable[[tuple[int, ...]], str] = at
) -> None:
    """Every value of `values` (array `name` of file `source`) must be finite: no NaN, no inf.

    `where` says where the first bad value sits (a CSV's line and column); by default its row.
    """
    values = torch.as_tensor(values)
    if not values.is_floating_point():
        return  # integers hold no NaN
    bad = ~torch.isfinite(values)
    if not bad.any():
        return
    first = tuple(int(i) for i in bad.nonzero()[0])
    raise DlpyError(
        f"{source}: {int(bad.sum())} of the {values.numel()} values of {name} are NaN or "
        f"infinite, the first ({float(values[first])}) at {where(first)}"
    )


def same_length(source: str | Path, **arrays: Array | Sequence) -> None:
    """The arrays of file `source` must hold one row per sample each: their lengths must agree."""
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        sizes = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise DlpyError(f"{source}: the arrays must hold one row per sample each, but {sizes}")


def not_empty(source: str | Path, sizes: Mapping[str, int], how: str = "") -> None:
    """Every split in `sizes` ({split: samples}) must hold a sample; `how` says what sets them.

    An empty training split trains on nothing; an empty test split reports no number, and an
    empty validation split no curve or best checkpoint: a split that may be empty by choice
    (dataset.val_size=0) is left out of `sizes` by the caller.
    """
    empty = [split for split, n in sizes.items() if not n]
    if empty:
        splits = " and ".join(empty)
        raise DlpyError(f"{source}: the {splits} split{'s' * (len(empty) > 1)} would be empty{how}")


def classes(source: str | Path, names: Sequence[str], how: str = "") -> None:
    """A classifier needs two classes at least; `how` says how to give them."""
    if len(names) < 2:
        raise DlpyError(
            f"{source} holds one class ({', '.join(names) or 'none'}): a classifier needs two "
            f"at least{how}"
        )


def every_class(source: str | Path, names: Sequence[str], labels: Array, how: str = "") -> None:
    """Every class must have a training sample among `labels`: a class without one is a class
    the network is asked to predict and never shown. `how` says what may have caused it."""
    counts = torch.bincount(torch.as_tensor(labels).long().flatten(), minlength=len(names))
    missing = [names[k] for k in range(len(names)) if not counts[k]]
    if missing:
        more = (
            f" (nor have {len(missing) - 1} more of the {len(names)})" if len(missing) > 1 else ""
        )
        raise DlpyError(f"{source}: class {missing[0]!r} has no training samples{more}{how}")


def pixel_range(
    needs: str, low: float, high: float, have: tuple[float, float], scaling: str
) -> None:
    """The scaled pixels, in [have[0], have[1]], must lie in [low, high]: what the network's output
    can reach (a sigmoid's [0, 1], a tanh's [-1, 1]), else it can never match them.

    `needs` names the option that sets the output (model.task.loss=bce).
    """
    slack = 1e-6  # float32 rounding of the scale and shift
    if have[0] < low - slack or have[1] > high + slack:
        fits = {(0, 1): "unit", (-1, 1): "symmetric"}[(low, high)]
        raise DlpyError(
            f"{needs} needs pixels in [{low:g}, {high:g}], but dataset.scaling={scaling} gives "
            f"[{have[0]:.3g}, {have[1]:.3g}]: set dataset.scaling={fits}"
        )
