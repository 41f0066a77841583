"""Datasets. Importing this package registers every built-in dataset."""
from dlpy.data import folder, tabular, text, timeseries, vision  # noqa: F401
