"""Classification metrics: accumulate predictions batch by batch, then summarise.

The arithmetic is scikit-learn's; this class only gathers what it needs and shapes the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support


class ClassificationMetrics:
    """>>> m = ClassificationMetrics(); m.update(np.array([[0.1, 0.9]]), np.array([1])); m.compute()["accuracy"]
    1.0
    """

    def __init__(self, num_classes: int = 10):
        self.num_classes = num_classes
        self.reset()

    def reset(self) -> None:
        self._probs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def update(self, probabilities: np.ndarray, labels: np.ndarray) -> None:
        self._probs.append(np.asarray(probabilities, dtype=np.float32))
        self._labels.append(np.asarray(labels, dtype=np.int64))

    @property
    def probabilities(self) -> np.ndarray:
        return np.concatenate(self._probs) if self._probs else np.zeros((0, self.num_classes), np.float32)

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)

    def compute(self) -> dict[str, Any]:
        probs, labels = self.probabilities, self.labels
        if len(labels) == 0:
            raise ValueError("no predictions to summarise")
        preds = probs.argmax(1)
        classes = list(range(self.num_classes))
        precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=classes, zero_division=0)
        matrix = confusion_matrix(labels, preds, labels=classes)
        return {
            "count": int(len(labels)),
            "accuracy": float((preds == labels).mean()),
            "errors": int((preds != labels).sum()),
            "macro_precision": float(precision.mean()),
            "macro_recall": float(recall.mean()),
            "macro_f1": float(f1.mean()),
            "per_class": {
                str(c): {
                    "precision": float(precision[c]),
                    "recall": float(recall[c]),
                    "f1": float(f1[c]),
                    "support": int(support[c]),
                }
                for c in classes
            },
            "confusion_matrix": matrix.tolist(),
        }

    def worst_mistakes(self, k: int = 25) -> list[dict[str, Any]]:
        """The ``k`` wrong predictions made with the highest confidence, most confident first."""
        probs, labels = self.probabilities, self.labels
        preds = probs.argmax(1)
        wrong = np.nonzero(preds != labels)[0]
        conf = probs[wrong, preds[wrong]]
        order = wrong[np.argsort(-conf, kind="stable")][:k]
        return [
            {
                "index": int(i),
                "label": int(labels[i]),
                "predicted": int(preds[i]),
                "confidence": float(probs[i, preds[i]]),
            }
            for i in order
        ]
