"""Registries: short name -> builder, one per kind of piece.

Built-in pieces register themselves with a decorator when their module is imported.
Other packages add pieces through Python entry points in the group ``dlpy.<kind>``
(for example ``[project.entry-points."dlpy.models"] mynet = "mypkg:build_mynet"``);
the first line of the builder's docstring is its description.
"""
import difflib
import importlib
import inspect
from importlib.metadata import entry_points

from dlpy.errors import DlpyError

# Modules whose import registers the built-in pieces.
_BUILTINS = ("dlpy.data", "dlpy.models", "dlpy.tasks", "dlpy.optim")


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

    def get(self, name):
        self._load()
        if name not in self._entries:
            raise DlpyError(unknown(self.kind, name, self._entries))
        return self._entries[name][0]

    def build(self, name, *args, key=None, **kwargs):
        """Call the builder `name`; `key` is the config node the kwargs came from."""
        builder = self.get(name)
        check_kwargs(builder, kwargs, where=f"{key or self.kind} ({self.kind} {name!r})")
        return builder(*args, **kwargs)


def unknown(kind, name, known):
    """`Unknown model 'cnnn'. Did you mean 'cnn'? Known models: cnn, mlp, ...`"""
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"Unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(known))}"


def check_kwargs(fn, kwargs, where):
    """Fail with the offending option names before calling `fn` with options it doesn't take."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    extra = sorted(set(kwargs) - set(params))
    if extra:
        accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        raise DlpyError(f"{where}: unknown option(s) {', '.join(extra)}; accepted: {', '.join(accepted)}")


DATASETS = Registry("dataset")
MODELS = Registry("model")
TASKS = Registry("task")
OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("scheduler")
ALL = (DATASETS, MODELS, TASKS, OPTIMIZERS, SCHEDULERS)
