"""`dlpy list`: every registered builder and every config preset, in a fraction of a second.

The builders register themselves when their modules are imported, and those import torch (2 s).
The listing is therefore kept in a cache file, keyed by dlpy's source files and the installed
plugins' entry points: a changed module or a new plugin makes a new listing, and only the first
`dlpy list` after that imports anything heavy.
"""

import hashlib
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from dlpy import CONF_DIR, __version__, groups, presets
from dlpy.registry import ALL

Listing = list[tuple[str, list[tuple[str, str]]]]  # (kind, [(name, description), ...])


# A builder's arguments that dlpy gives, not the config: `dlpy list <name>` leaves them out.
GIVEN = ("net", "optimizer", "params", "run_dir", "hparams", "total_steps", "steps_per_epoch")


def list_command(args: list[str]) -> None:
    """Every registered builder with its description, then every config preset with the first
    comment line of its file; `dlpy list <name>...`: those builders' options."""
    if args:
        for name in args:
            options_of(name)
        return
    for kind, items in builders():
        print(f"{kind}s:")
        for name, description in items:
            print(f"  {name:16s} {description}")
    print("\nconfig presets (dlpy train <group>=<preset>):")
    for group in groups():
        print(f"  {group}:")
        for name in presets(group):
            print(f"    {name:22s} {about(Path(CONF_DIR) / group / f'{name}.yaml')}")


def options_of(name: str) -> None:
    """`dlpy list cnn`: each builder of that name (a model, a task, ...) with every option's type,
    range and default, as its signature declares them (dlpy/schema.py); `model/cnn` picks one kind.
    """
    import dlpy.catalog  # noqa: F401  heavy (torch), only when a builder's options are asked for
    from dlpy import schema  # beside catalog: the plain listing needs neither
    from dlpy.errors import DlpyError, unknown  # only a name that is no builder's needs it

    kind, _, bare = name.rpartition("/")
    found = [reg for reg in ALL if bare in reg.names() and kind in ("", reg.kind)]
    if not found:
        known = {n for reg in ALL for n in reg.names()}
        raise DlpyError(f"dlpy list: {unknown('builder', bare, known)}")
    for registry in found:
        description = dict(registry.items())[bare]
        print(f"{registry.kind} {bare}: {description}")
        rows = schema.describe(registry.get(bare), skip=GIVEN)
        width = max((len(option) for option, _, _ in rows), default=0)
        for option, declared, default in rows:
            print(f"  {option:{width}s}  {declared}; default {default}")
        if not rows:
            print("  (no options)")


def about(preset: Path) -> str:
    """A preset's description: the first comment line of its YAML file (not `# @package`)."""
    for line in preset.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @"):
            return line.lstrip("# ")
    return ""


def builders() -> Listing:
    """The registries' contents: from the cache when dlpy's sources and plugins are unchanged."""
    if "dlpy.catalog" in sys.modules:  # imported already (a test, a notebook): nothing to save
        return from_registries()
    cache = cache_dir() / f"registries-{source_key()}.json"
    try:
        return [(kind, [tuple(item) for item in items]) for kind, items in read(cache)]
    except (OSError, ValueError, TypeError):
        pass  # none yet, or unreadable: build it
    listing = from_registries()
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(listing))
        os.replace(partial, cache)  # whole or not at all: a concurrent `dlpy list` reads either
    except OSError:
        pass  # a read-only home: the listing is still printed, only slower next time
    return listing


def read(cache: Path) -> Listing:
    return json.loads(cache.read_text())


def from_registries() -> Listing:
    import dlpy.catalog  # noqa: F401  heavy (torch): every builder's module fills the registries

    return [(registry.kind, registry.items()) for registry in ALL]


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/dlpy (~/.cache/dlpy), as other tools keep their caches."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlpy"


def source_key() -> str:
    """A digest of what the listing depends on: dlpy's version, the name, size and modification
    time of each of its modules, and the plugins' entry points."""
    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(package)} {stat.st_size} {stat.st_mtime_ns}".encode())
    for registry in ALL:
        for ep in entry_points(group=f"dlpy.{registry.kind}s"):
            digest.update(f"{registry.kind} {ep.name} {ep.value}".encode())
    return digest.hexdigest()[:16]
