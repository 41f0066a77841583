"""Tasks: the inner training step of each model family (dlpy/catalog.py imports and so registers
them). The package imports none of its modules itself: the trainer imports the base class, and
the GAN task's FID trains a classifier with the trainer, so importing them all here would be a
cycle."""
