"""Corrections users send back (an image and the number it really shows), stored, then exported for training."""
