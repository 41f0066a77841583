"""Every built-in builder, registered.

Each module below registers its builders in dlpy.registry when it is imported, so importing this
module fills the registries with dlpy's own pieces; plugins' pieces (Python entry points) are
added by the registries themselves on first use. Import it before looking a name up.
"""

from dlpy import callbacks, data, models, optim, tasks

__all__ = ["callbacks", "data", "models", "optim", "tasks"]
