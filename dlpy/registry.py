"""Registries: short name -> builder, one per kind of piece.

Built-in pieces register themselves with a decorator when their module is imported.
Other packages add pieces through Python entry points in the group ``dlpy.<kind>``
(for example ``[project.entry-points."dlpy.models"] mynet = "mypkg:build_mynet"``);
the first line of the builder's docstring is its description.
"""

import importlib
import inspect
from importlib.metadata import entry_points

from dlpy.errors import DlpyError, first_line, unknown

# Modules whose import registers the built-in pieces.
_BUILTINS = ("dlpy.data", "dlpy.models", "dlpy.tasks", "dlpy.optim", "dlpy.callbacks")


class Registry:
    def __init__(self, kind):
        self.kind = kind
        self._entries = {}  # name -> (builder, description)
        self._plugins_loaded = False

    def register(self, name, description=None):
        def add(builder):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
            self._entries[name] = (builder, doc)
            return builder

        return add

    def _load(self):
        for module in _BUILTINS:
            importlib.import_module(module)
        if not self._plugins_loaded:
            self._plugins_loaded = True
            for ep in entry_points(group=f"dlpy.{self.kind}s"):
                if ep.name not in self._entries:
                    self.register(ep.name)(ep.load())

    def names(self):
        self._load()
        return sorted(self._entries)

    def items(self):
        """(name, description) pairs, sorted by name."""
        self._load()
        return [(name, self._entries[name][1]) for name in sorted(self._entries)]

    def get(self, name, key=None):
        """The builder `name`; `key` is the config node that names it, for the error."""
        self._load()
        if not isinstance(name, str) or name not in self._entries:
            raise DlpyError(f"{key}.name: " * bool(key) + unknown(self.kind, name, self._entries))
        return self._entries[name][0]

    def build(self, name, *args, key=None, **kwargs):
        """Call the builder `name`; `key` is the config node the kwargs came from, named by any error."""
        builder, key = self.get(name, key), key or self.kind
        where = f"{key} ({self.kind} {name!r})"
        check_kwargs(builder, kwargs, where, key)
        try:
            built = builder(*args, **kwargs)
        except (
            DlpyError,
            TypeError,
            ValueError,
            LookupError,
            RuntimeError,
        ) as err:  # torch refusing a size, say
            # A negative number explains many refusals; a builder's own message wins where it names the key.
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


def check_kwargs(fn, kwargs, where, key=None):
    """Fail with the option at fault before calling `fn` with options it doesn't take, or of the wrong kind.

    `key` is the config node of the options, so that an error names the full key.
    """
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        extra = sorted(set(kwargs) - set(params))
        if extra:
            accepted = [
                n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            raise DlpyError(
                f"{where}: unknown option(s) {', '.join(extra)}; accepted: {', '.join(accepted)}"
            )
    for name, value, example in examples(fn, kwargs):
        check_kind(f"{key}.{name}" if key else name, value, example)


def check_signs(fn, kwargs, key):
    """No negative number where the option's default is not negative: sizes, rates and counts never are."""
    negative = negative_option(fn, kwargs, key)
    if negative:
        raise DlpyError(negative)


def negative_option(fn, kwargs, key):
    """`model.padding must be >= 0, got -7` for the first such option, else None."""
    for name, value, example in examples(fn, kwargs):
        if is_number(example) and example >= 0 and is_number(value) and value < 0:
            return f"{key}.{name} must be >= 0, got {value!r}"
    return None


def examples(fn, kwargs):
    """(name, value, an example of the option's kind) for each option `fn` declares: its default, else its type."""
    params = inspect.signature(fn).parameters
    for name, value in kwargs.items():
        if name in params:
            param = params[name]
            yield (
                name,
                value,
                param.default
                if param.default is not param.empty
                else ANNOTATED.get(param.annotation),
            )


# Kinds of option, told by an example (the default): bool before number, since True is also an int.
KINDS = (
    (bool, "true or false"),
    ((int, float), "a number"),
    (str, "a string"),
    ((list, tuple), "a list"),
    (dict, "a mapping"),
)
ANNOTATED = {
    int: 0,
    float: 0.0,
    bool: False,
    str: "",
    list: [],
    dict: {},
}  # an option without a default: its type


def check_kind(key, value, example):
    """`value` must be of the example's kind: a wrong type would otherwise surface as a traceback deep
    inside torch, or not at all (the string "false" is true). Where the default is None, or there is
    neither default nor type, anything goes."""
    for types, kind in KINDS:
        if example is not None and isinstance(example, types):
            if not isinstance(value, types) or (
                isinstance(value, bool) and not isinstance(example, bool)
            ):
                raise DlpyError(f"{key} must be {kind}, got {value!r}")
            return


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


DATASETS = Registry("dataset")
MODELS = Registry("model")
TASKS = Registry("task")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
CALLBACKS = Registry("callback")
ALL = (DATASETS, MODELS, TASKS, OPTIMIZERS, SCHEDULERS, CALLBACKS)
