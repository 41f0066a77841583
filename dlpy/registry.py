"""Registries: short name -> builder, one per kind of piece.

Built-in pieces register themselves with a decorator when their module is imported; dlpy/catalog.py
imports them all. Other packages add pieces through Python entry points in the group
``dlpy.<kind>s`` (for example ``[project.entry-points."dlpy.models"] mynet = "mypkg:build_mynet"``),
loaded on a registry's first use. The first line of a builder's docstring is its description.

This module imports nothing of dlpy but its errors, so any module may register into it.
"""

import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from dlpy import schema
from dlpy.errors import DlpyError, first_line, unknown

Builder = Callable[..., Any]


class Registry:
    """One kind of piece (dataset, model, ...): name -> (builder, one-line description)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, tuple[Builder, str]] = {}
        self._plugins_loaded = False

    def register(self, name: str, description: str | None = None) -> Callable[[Builder], Builder]:
        """A decorator that registers its builder under `name`."""

        def add(builder: Builder) -> Builder:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
            self._entries[name] = (builder, doc)
            return builder

        return add

    def _load_plugins(self) -> None:
        """Other packages' pieces, once: their entry points are loaded on the first look-up."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=f"dlpy.{self.kind}s"):
            if ep.name not in self._entries:
                self.register(ep.name)(ep.load())

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, str]]:
        """(name, description) pairs, sorted by name."""
        self._load_plugins()
        return [(name, self._entries[name][1]) for name in sorted(self._entries)]

    def get(self, name: str, key: str | None = None) -> Builder:
        """The builder `name`; `key` is the config node that names it, for the error."""
        self._load_plugins()
        if not isinstance(name, str) or name not in self._entries:
            raise DlpyError(f"{key}.name: " * bool(key) + unknown(self.kind, name, self._entries))
        return self._entries[name][0]

    def build(self, name: str, *args: Any, key: str | None = None, **kwargs: Any) -> Any:
        """Call the builder `name`; `key` is the config node of the kwargs, named by any error."""
        builder = self.get(name, key)
        key = key or self.kind
        where = f"{key} ({self.kind} {name!r})"
        check_kwargs(builder, kwargs, where, key)
        try:
            built = builder(*args, **kwargs)
        except (DlpyError, TypeError, ValueError, LookupError, RuntimeError) as err:
            # torch refusing a size, say. A negative number explains many refusals; a builder's
            # own message wins where it names the key.
            negative = negative_option(builder, kwargs, key)
            if negative and negative.split(" ")[0] not in str(err):
                raise DlpyError(negative) from err
            if isinstance(err, DlpyError):
                raise
            raise DlpyError(
                f"{where} cannot be built with these options: {first_line(err)}"
            ) from err
        check_signs(builder, kwargs, key)  # a negative number the builder let through
        return built


def check_kwargs(fn: Builder, kwargs: dict[str, Any], where: str, key: str | None = None) -> None:
    """Fail with the option at fault before calling `fn` with options it doesn't take, or with a
    value outside the type and range its signature declares (dlpy/schema.py).

    `key` is the config node of the options, so that an error names the full key.
    """
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        extra = sorted(set(kwargs) - set(params))
        if extra:
            named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            accepted = ", ".join(n for n, p in params.items() if p.kind in named)
            raise DlpyError(f"{where}: unknown option(s) {', '.join(extra)}; accepted: {accepted}")
    schema.check(fn, kwargs, key)


def check_signs(fn: Builder, kwargs: dict[str, Any], key: str) -> None:
    """No negative number where the option's default is not negative: for a plugin's builder whose
    signature declares no range, sizes, rates and counts still never are."""
    negative = negative_option(fn, kwargs, key)
    if negative:
        raise DlpyError(negative)


def negative_option(fn: Builder, kwargs: dict[str, Any], key: str) -> str | None:
    """`model.padding must be >= 0, got -7` for the first undeclared option given a negative
    number where its default is not negative, else None."""
    for name, found, default in schema.declared(fn):
        value = kwargs.get(name)
        if found.range is None and schema.is_number(default) and default >= 0:
            if schema.is_number(value) and value < 0:
                return f"{key}.{name} must be >= 0, got {value!r}"
    return None


DATASETS = Registry("dataset")
MODELS = Registry("model")
TASKS = Registry("task")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
CALLBACKS = Registry("callback")
LOGGERS = Registry("logger")  # callbacks too; the `logger` config group chooses among them
ALL = (DATASETS, MODELS, TASKS, OPTIMIZERS, SCHEDULERS, CALLBACKS, LOGGERS)
