"""Datasets. Importing this package registers every built-in dataset."""
from dlpy.data import folder, vision  # noqa: F401
