"""Training: the loop, optimizers and schedules, and loggers."""

from digitread.train.loop import fit

__all__ = ["fit"]
