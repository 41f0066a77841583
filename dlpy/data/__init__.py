"""Datasets. Importing this package registers every built-in dataset."""
from dlpy.data import vision  # noqa: F401
