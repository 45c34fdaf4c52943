"""Digit classifiers: each takes (B, 1, 28, 28) floats and returns logits (B, 10)."""

from digitread.models import cnn, crnn, ensemble, mlp, rnn  # noqa: F401  (importing registers the models)
from digitread.models._registry import count_parameters, create_model, get_entry, list_models, register_model

__all__ = ["count_parameters", "create_model", "get_entry", "list_models", "register_model"]
