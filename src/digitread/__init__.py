"""digitread: read handwritten digits and numbers from images.

>>> from digitread import create_model, list_models
>>> model = create_model("cnn_small")
"""

from digitread.checkpoint import load_model, save_model
from digitread.errors import DigitreadError
from digitread.inference.predictor import DigitClassifier
from digitread.inference.reader import DigitReader
from digitread.inference.results import DigitReading, Reading
from digitread.inference.sequence import SequenceReader
from digitread.models import create_model, list_models

__version__ = "0.1.0"

__all__ = [
    "DigitClassifier",
    "DigitReader",
    "DigitReading",
    "Reading",
    "SequenceReader",
    "DigitreadError",
    "__version__",
    "create_model",
    "list_models",
    "load_model",
    "save_model",
]
