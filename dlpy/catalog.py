"""Every built-in builder, registered.

Each module below registers its builders in dlpy.registry when it is imported, so importing this
module fills the registries with dlpy's own pieces; plugins' pieces (Python entry points) are
added by the registries themselves on first use. Import it before looking a name up.
"""

from dlpy import callbacks, data, models, optim
from dlpy.tasks import (
    aae,
    autoencoder,
    classification,
    conditional_gan,
    gan,
    language_model,
    multi_output,
    regression,
    reinforce,
    siamese,
    transfer,
)

__all__ = ["callbacks", "data", "models", "optim"]
__all__ += ["autoencoder", "classification", "gan", "language_model", "regression", "reinforce"]
__all__ += ["aae", "conditional_gan", "transfer"]
__all__ += ["multi_output", "siamese"]
