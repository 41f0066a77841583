"""Tasks: the inner training step of each model family. Importing registers every built-in task."""

from dlpy.tasks import autoencoder, classification, gan, language_model, regression, reinforce  # noqa: F401
