"""Errors a user can cause and fix. The CLI prints their message as one line, never a traceback."""


class DigitreadError(Exception):
    """Base class: the message says what went wrong and what to do."""


class DataError(DigitreadError):
    """A data file is missing, corrupt, truncated or not what it claims to be."""


class ModelFileError(DigitreadError):
    """A model folder or checkpoint is missing files, tampered with or does not match its config."""


class ImageError(DigitreadError):
    """An image cannot be read or holds nothing to classify."""


class ConfigError(DigitreadError):
    """A setting has a value that cannot work (unknown model, bad optimizer name, ...)."""
