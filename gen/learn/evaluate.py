"""Accuracy of a network's class predictions against labels, and its confusion matrix."""

from dataclasses import dataclass

import numpy as np

from ..network.summary import format_table

__all__ = ["Evaluation", "confusion_matrix", "evaluate"]


def confusion_matrix(labels, predicted, classes):
    """``matrix[true, predicted]`` counts, ``classes x classes`` (int64)."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Predictions scored against labels: ``correct`` of ``count``, and the confusion matrix."""

    count: int
    correct: int
    matrix: np.ndarray

    @property
    def accuracy(self):
        return self.correct / max(1, self.count)

    def accuracy_text(self):
        """``98.06% (353/360)``."""
        return f"{100 * self.accuracy:.2f}% ({self.correct}/{self.count})"

    def matrix_text(self):
        """The confusion matrix as a text table, true classes down and predictions across."""
        header = ["true\\pred"] + [str(k) for k in range(len(self.matrix))]
        return format_table(header, [[k] + row for k, row in enumerate(self.matrix.tolist())])


def evaluate(predicted, labels, classes):
    """Score ``predicted`` class indices against ``labels`` (both ``(N,)``).

    Raises
    ------
    ValueError
        If a label is not a class index ``0 .. classes - 1``.
    """
    labels = np.asarray(labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"labels must be class indices 0..{classes - 1}")
    correct = int(np.sum(np.asarray(predicted) == labels))
    return Evaluation(len(labels), correct, confusion_matrix(labels, predicted, classes))
