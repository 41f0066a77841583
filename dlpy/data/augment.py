"""`dataset.augment`: from the config to the steps that augment each training batch.

The config names the augmentations (dlpy/data/augmentations.py), in order, in either of two forms:

- a mapping of named entries, `{crop: {padding: 4}, hflip: true}`: Hydra merges mappings key by
  key, so a preset or an override turns one entry on (`+dataset.augment.rotation={degrees: 40}`),
  off (`dataset.augment.hflip=false`) or changes one option (`dataset.augment.crop.padding=2`);
  the presets use this form. An entry's value is `true`, `false`/`null` (off) or its options, which
  may hold a `name:` of their own so that one augmentation can appear twice.
- a list, `[{name: rotation, degrees: 40}, hflip]`: the whole pipeline in one override.

Steps on pixels run in the order given; MixUp and CutMix blend the normalised batch after them.
"""

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch

from dlpy.data.augmentations import AUGMENTATIONS, Context, Mixing, PerImage, Step, seeded
from dlpy.errors import DlpyError, check_choice, check_number, first_line, unknown
from dlpy.registry import check_kwargs

Entry = tuple[str, str, dict]  # (config key, augmentation name, options)
Check = Callable[[str, Any], None]  # (config key, value): raises DlpyError naming the key


class Augmentation:
    """A data set's configured steps: `pixels` on the uint8 images, then `mix` with the labels."""

    def __init__(self, augment: Any, size: tuple[int, int], num_classes: int) -> None:
        context = Context(tuple(size), num_classes)
        steps = [build(*one, context) for one in entries(augment)]
        self.mixes = [step.transform for step in steps if isinstance(step, Mixing)]
        self.steps = fused([step for step in steps if not isinstance(step, Mixing)])

    def __bool__(self) -> bool:
        return bool(self.steps or self.mixes)

    def pixels(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for step in self.steps:
            x = step(x, generator)
        return x

    def mix(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MixUp/CutMix of normalised images; the labels become (N, classes) probabilities.

        One draw per batch, as in both papers and in v2. With both configured, each batch takes
        one of them at random, as torchvision's reference recipes do.
        """
        if not self.mixes:
            return x, y
        with seeded(generator):
            index = int(torch.randint(len(self.mixes), ())) if len(self.mixes) > 1 else 0
            return self.mixes[index](x, y)


def fused(steps: list[Step]) -> list[Step]:
    """Neighbouring per-image steps run in one pass over the images, under one seed."""
    out: list[Step] = []
    for step in steps:
        if isinstance(step, PerImage) and out and isinstance(out[-1], PerImage):
            out[-1] = PerImage(chain(out[-1].transform, step.transform))
        else:
            out.append(step)
    return out


def chain(first: Callable, second: Callable) -> Callable:
    return lambda image: second(first(image))


def entries(augment: Any) -> list[Entry]:
    """(config key, name, options) of each augmentation that is on, in order."""
    if augment is None:
        return []
    if isinstance(augment, Mapping):
        items = [(f"dataset.augment.{label}", label, value) for label, value in augment.items()]
    elif isinstance(augment, Sequence) and not isinstance(augment, str):
        items = [(f"dataset.augment.{i}", None, value) for i, value in enumerate(augment)]
    else:
        raise DlpyError(f"dataset.augment must be a mapping or a list, got {augment!r}")
    found = [entry(key, label, value) for key, label, value in items]
    return [one for one in found if one is not None]


def entry(key: str, label: str | None, value: Any) -> Entry | None:
    """One configured augmentation, or None for one turned off (`hflip: false`)."""
    if label == "crop_padding" and not isinstance(value, bool | Mapping):
        # the first spelling of the padded crop, `crop_padding: 4` (0 is off), kept for the
        # presets and overrides that use it
        check_number(key, value or 0, integer=True)
        return (key, "crop", {"padding": value}) if value else None
    if label is None and isinstance(value, str):
        value = {"name": value}  # a bare name in a list: that augmentation with its defaults
    if label is not None and (value is None or isinstance(value, bool)):
        if not value:
            return None
        value = {}  # `hflip: true`: with its defaults
    if not isinstance(value, Mapping):
        what = "a mapping of its options" if label is None else "true, false or its options"
        raise DlpyError(f"{key} must be {what}, got {value!r}")
    options = dict(value)
    name = options.pop("name", label)
    if name is None:
        raise DlpyError(f"{key}.name is missing: it names the augmentation")
    if name not in AUGMENTATIONS.names():
        where = f"{key}.name" if "name" in value else key
        raise DlpyError(f"{where}: {unknown('augmentation', name, AUGMENTATIONS.names())}")
    return key, name, options


def build(key: str, name: str, options: dict, context: Context) -> Step:
    """The step `name`, its options checked first: every message names the key at fault."""
    builder = AUGMENTATIONS.get(name, key)
    check_kwargs(builder, options, f"{key} ({name})", key)
    for option, value in options.items():
        if option in LIMITS:
            LIMITS[option](f"{key}.{option}", value)
    try:
        return builder(context, **options)
    except (TypeError, ValueError) as err:  # what v2 refuses that the checks above let through
        raise DlpyError(f"{key} ({name}): {first_line(err)}") from err


# -- option checks, by option name: the same name means the same thing in every augmentation -----


def between(low: float, high: float) -> Check:
    def check(key: str, value: Any) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise DlpyError(f"{key} must be a number in [{low:g}, {high:g}], got {value!r}")

    return check


def whole(at_least: int) -> Check:
    return partial(check_number, at_least=at_least, integer=True)


def positive(key: str, value: Any) -> None:
    check_number(key, value)
    if value == 0:
        raise DlpyError(f"{key} must be a number > 0, got {value!r}")


def pair(high: float | None) -> Check:
    """Two numbers [low, high], each at least 0 (and at most `high`), low <= high."""
    each = partial(check_number, at_least=0) if high is None else between(0, high)

    def check(key: str, value: Any) -> None:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise DlpyError(f"{key} must be two numbers [low, high], got {value!r}")
        for i, number in enumerate(value):
            each(f"{key}.{i}", number)
        if value[0] > value[1]:
            raise DlpyError(f"{key} must be [low, high] with low <= high, got {value!r}")

    return check


LIMITS: dict[str, Check] = {
    "p": between(0, 1),
    "padding": whole(1),
    "degrees": between(0, 180),
    "shear": between(0, 80),  # degrees; tan(90) is infinite
    "translate": pair(1),
    "scale": pair(None),
    "ratio": pair(None),
    "brightness": partial(check_number, at_least=0),
    "contrast": partial(check_number, at_least=0),
    "saturation": partial(check_number, at_least=0),
    "hue": between(0, 0.5),
    "num_ops": whole(0),
    "magnitude": whole(0),
    "num_magnitude_bins": whole(2),
    "alpha": positive,
    "fill": between(0, 255),  # uint8 pixels
    "value": between(0, 255),
    "interpolation": partial(check_choice, choices=("nearest", "bilinear")),
}
