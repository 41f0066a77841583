"""Datasets. Importing this package registers every built-in dataset."""

from dlpy.data import env, folder, tabular, text, timeseries, vision  # noqa: F401
