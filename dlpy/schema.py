"""Each builder's options, declared once in its signature: a type and, through `Annotated`, a range.

    def build_vae(latent: Size = 2, dropout: Dropout = 0.0, decoder: Literal["bce", "mse"] = "bce")

says that `model.latent` is a whole number of at least 1, `model.dropout` a fraction in [0, 1)
and `model.decoder` one of two words. The registry checks every option against its declaration
before the builder runs (`check`), so a config fails with `model.latent must be an integer >= 1,
got 0` instead of training on nonsense or ending in torch's traceback; `dlpy list <name>` prints
the same declarations (`describe`), and tests/test_bad_input.py generates its fuzz from them
(`outside`). Floats refuse NaN and infinity unless the range says `finite=False`.

The aliases below name the ranges that recur; a one-off range is `Annotated[int, Range(ge=2)]`.
The design follows pydantic's constrained types (`Annotated[int, Field(ge=1)]`), without the
dependency: dlpy needs the check and the message, not the parsing.
"""

import collections.abc
import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union

from dlpy.errors import DlpyError


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ge/gt from below, le/lt from above; finite: refuse NaN and inf."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return not self.finite
        if math.isinf(value) and self.finite:
            return False
        return (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )

    def words(self) -> str:
        """`>= 1`, `in [0, 1)`, ...: how a message and `dlpy list` say the range."""
        low = (
            f"[{self.ge:g}"
            if self.ge is not None
            else f"({self.gt:g}"
            if self.gt is not None
            else ""
        )
        high = (
            f"{self.le:g}]"
            if self.le is not None
            else f"{self.lt:g})"
            if self.lt is not None
            else ""
        )
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f">= {self.ge:g}" if self.ge is not None else f"> {self.gt:g}"
        if high:
            return f"<= {self.le:g}" if self.le is not None else f"< {self.lt:g}"
        return "finite" if self.finite else ""


Size = Annotated[int, Range(ge=1)]  # widths, channels, lengths, counts that must be positive
Count = Annotated[int, Range(ge=0)]  # how many, where none is a valid answer
Positive = Annotated[float, Range(gt=0)]  # rates, temperatures, scales
NonNegative = Annotated[float, Range(ge=0)]  # weights of a loss term, momentum, decay
Dropout = Annotated[float, Range(ge=0, lt=1)]  # a dropout of 1 zeroes every activation
Probability = Annotated[float, Range(ge=0, le=1)]  # fractions and probabilities
Real = Annotated[float, Range()]  # any finite number


@dataclass(frozen=True)
class Option:
    """One declared option: its base type (int, float, bool, str, list, dict, or None for
    anything), the range of a number, the choices of a Literal, and whether None is allowed."""

    kind: type | None
    range: Range | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    item: "Option | None" = None  # the elements of a list[...]
    alternatives: tuple["Option", ...] = ()  # a union's members: the value fits one of them

    def check(self, key: str, value: Any) -> None:
        """Raise DlpyError naming `key` unless `value` fits this declaration."""
        if value is None:
            if self.nullable or (self.kind is None and not self.choices and not self.alternatives):
                return
            raise DlpyError(f"{key} must be {self.words()}, got None")
        if self.alternatives:
            if not any(alternative.fits(value) for alternative in self.alternatives):
                raise DlpyError(f"{key} must be {self.words()}, got {value!r}")
            return
        if self.choices is not None:
            if value not in self.choices:
                raise DlpyError(f"{key} must be {self.words()}, got {value!r}")
            return
        if not self.fits_kind(value):
            raise DlpyError(f"{key} must be {self.words()}, got {value!r}")
        if self.range is not None and not self.range.holds(value):
            raise DlpyError(f"{key} must be {self.words()}, got {value!r}")
        if self.item is not None:
            for i, element in enumerate(value):
                self.item.check(f"{key}[{i}]", element)

    def fits(self, value: Any) -> bool:
        try:
            self.check("", value)
        except DlpyError:
            return False
        return True

    def fits_kind(self, value: Any) -> bool:
        if self.kind is None:
            return True
        if self.kind is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):
            return False  # YAML's true is not the number 1
        if self.kind is float:
            return isinstance(value, (int, float))
        if self.kind in (list, tuple):
            return isinstance(value, (list, tuple))
        if self.kind is str:
            return isinstance(value, (str, PurePath))  # code may hand a builder a Path
        return isinstance(value, self.kind)

    def words(self) -> str:
        """`an integer >= 1`, `one of 'bce', 'mse'`, ..., as messages and `dlpy list` say it."""
        if self.choices is not None:
            said = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.alternatives:
            said = " or ".join(alternative.words() for alternative in self.alternatives)
        else:
            said = NOUNS.get(self.kind, "anything")
            if self.item is not None:
                said += f", each {self.item.words()}"
            if self.range is not None and self.range.words() == "finite":
                said = said.replace("a number", "a finite number")
            elif self.range is not None and self.range.words():
                said += f" {self.range.words()}"
        return said + " or null" * self.nullable


NOUNS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
}


def option(annotation: Any, default: Any = inspect.Parameter.empty) -> Option:
    """The declaration an annotation makes; None is allowed where the default is None."""
    nullable = default is None
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        found = option(base, default)
        ranges = [extra for extra in extras if isinstance(extra, Range)]
        return Option(
            found.kind, ranges[0] if ranges else None, found.choices, found.nullable, found.item
        )
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        nullable = nullable or len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            found = option(args[0])
            return Option(found.kind, found.range, found.choices, nullable, found.item)
        members = tuple(dict.fromkeys(option(arg) for arg in args))  # str | Path: one string
        if len(members) == 1:
            return Option(members[0].kind, members[0].range, members[0].choices, nullable)
        return Option(None, nullable=nullable, alternatives=members)
    if origin is Literal:
        return Option(None, choices=typing.get_args(annotation), nullable=nullable)
    if origin in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(annotation)
        item = option(args[0]) if args and args[0] is not Ellipsis else None
        return Option(list, nullable=nullable, item=item)
    if origin in (dict, collections.abc.Mapping):
        return Option(dict, nullable=nullable)
    if annotation in NOUNS:
        return Option(annotation, nullable=nullable)
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return Option(str, nullable=nullable)  # a path is given as a string
    # Undeclared (a plugin's builder, Any): the default's kind, as far as it tells one; a number
    # default stands for any number, since torch writes weight_decay=0 for a float option.
    kind = next((kind for kind in KINDS if isinstance(default, kind)), None)
    return Option(float if kind is int else kind, nullable=nullable)


KINDS = (bool, int, float, str, list, tuple, dict)  # bool before int: True is an int


def declared(fn: Callable[..., Any]) -> Iterator[tuple[str, Option, Any]]:
    """(name, declaration, default) for each keyword option of `fn` (not *args or **kwargs)."""
    hints = hints_of(fn)
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(name, Any)
        yield name, option(annotation, param.default), param.default


def hints_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """The annotations of a builder: a function's, a class's __init__'s, a partial's function's."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    if inspect.isclass(target):
        target = target.__init__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except (NameError, TypeError):
        return {}  # a plugin's annotation that names what its module never imported


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check(fn: Callable[..., Any], kwargs: dict[str, Any], key: str | None) -> None:
    """Every option given to `fn` against its declaration; the error names the full key."""
    options = {name: found for name, found, _ in declared(fn)}
    for name, value in kwargs.items():
        if name in options:
            options[name].check(f"{key}.{name}" if key else name, value)


def describe(fn: Callable[..., Any], skip: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """(name, declaration in words, default) per option, for `dlpy list <name>`."""
    rows = []
    for name, found, default in declared(fn):
        if name in skip:
            continue
        shown = "required" if default is inspect.Parameter.empty else repr(default)
        rows.append((name, found.words(), shown))
    return rows
