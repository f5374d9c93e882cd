"""Accuracy of a network's class predictions against labels, and its confusion matrix; for
per-position predictions (``class_map``), pixel accuracy and mean IoU.

Segmentation scores (:func:`evaluate_map`), over every position of every input together:

- **pixel accuracy**: the fraction of positions whose predicted class is the label;
- **IoU of class k**: ``|P_k & L_k| / |P_k | L_k|``, with ``P_k`` the positions predicted ``k``
  and ``L_k`` those labelled ``k``;
- **mean IoU**: the mean of the IoUs of the classes present in the labels or the predictions
  (``|P_k | L_k| > 0``); a class absent from both has no IoU (0/0) and is left out.
"""

from dataclasses import dataclass

import numpy as np

from ..network.summary import format_table
from .datasets import label_map

__all__ = [
    "Evaluation",
    "MapEvaluation",
    "confusion_matrix",
    "evaluate",
    "evaluate_map",
    "check_labels",
    "score_network",
]


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


@dataclass(frozen=True, eq=False)
class MapEvaluation:
    """Per-position predictions scored against per-position labels (module docs).

    Attributes
    ----------
    count : int
        Inputs (maps).
    positions : int
        Positions scored, over all the maps.
    correct : int
        Positions whose prediction is the label.
    matrix : numpy.ndarray
        ``matrix[true, predicted]`` counts of positions.
    """

    count: int
    positions: int
    correct: int
    matrix: np.ndarray

    @property
    def pixel_accuracy(self):
        return self.correct / max(1, self.positions)

    @property
    def accuracy(self):
        """The pixel accuracy (the figure that stands for accuracy)."""
        return self.pixel_accuracy

    @property
    def iou(self):
        """Per class, its IoU, or None for a class neither labelled nor predicted."""
        inter = np.diag(self.matrix)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - inter
        return [None if u == 0 else int(i) / int(u) for i, u in zip(inter, union, strict=True)]

    @property
    def mean_iou(self):
        present = [v for v in self.iou if v is not None]
        return sum(present) / len(present) if present else 0.0

    def accuracy_text(self):
        """``86.10% (9920/11520)``: the pixel accuracy."""
        return f"{100 * self.pixel_accuracy:.2f}% ({self.correct}/{self.positions})"

    def iou_text(self):
        """``64.21% (11 classes)``: the mean IoU and how many classes it averages."""
        present = sum(v is not None for v in self.iou)
        return f"{100 * self.mean_iou:.2f}% ({present} classes)"

    def matrix_text(self):
        """The confusion matrix of positions, with each class's IoU in the last column."""
        header = ["true\\pred"] + [str(k) for k in range(len(self.matrix))] + ["IoU"]
        rows = [
            [k] + row + ["-" if v is None else f"{100 * v:.1f}%"]
            for k, (row, v) in enumerate(zip(self.matrix.tolist(), self.iou, strict=True))
        ]
        return format_table(header, rows)


def evaluate_map(predicted, labels, classes):
    """Score per-position class indices ``predicted`` against ``labels`` (both ``(N, h, w)``).

    Raises
    ------
    ValueError
        If the shapes differ, or a label or prediction is not a class index
        ``0 .. classes - 1``.
    """
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    if predicted.shape != labels.shape:
        raise ValueError(
            f"labels of shape {labels.shape} for predicted maps of shape {predicted.shape}"
        )
    for name, values in (("labels", labels), ("predictions", predicted)):
        if values.size and (values.min() < 0 or values.max() >= classes):
            raise ValueError(f"{name} must be class indices 0..{classes - 1}")
    matrix = confusion_matrix(labels.ravel(), predicted.ravel(), classes)
    correct = int(np.sum(predicted == labels))
    return MapEvaluation(len(labels), int(labels.size), correct, matrix)


def check_labels(net, labels, source):
    """Raise ``ValueError`` (one line, naming ``source``) unless ``labels`` are of the kind
    ``net``'s output is scored against: one class per input for ``argmax``, ``(N, H, W)``
    pixel labels for ``class_map``; other outputs have no accuracy."""
    labels = np.asarray(labels)
    if net.output == "class_map":
        if labels.ndim != 3:
            raise ValueError(
                f"{source} labels whole images, but {net.name} has output 'class_map' (a class "
                "per position): it needs pixel labels, e.g. --data digits-seg"
            )
    elif net.output == "argmax":
        if labels.ndim != 1:
            raise ValueError(
                f"{source} labels pixels, but {net.name} has output 'argmax' (one class per "
                "input): pixel labels need a network with output 'class_map'"
            )
    else:
        raise ValueError(
            f"{net.name}: eval needs a network with output 'argmax' or 'class_map', "
            f"not {net.output!r}"
        )


def score_network(net, predicted, labels, source):
    """The :class:`Evaluation` (``argmax``) or :class:`MapEvaluation` (``class_map``; pixel
    labels downsampled to the output map by :func:`gen.learn.datasets.label_map`) of the
    golden model's ``predicted`` results of ``net``.

    Raises
    ------
    ValueError
        One line, when the labels do not fit the network (:func:`check_labels`) or are not
        class indices.
    """
    check_labels(net, labels, source)
    classes = int(net.output_shape[-1]) if net.output == "class_map" else None
    if classes is None:
        return evaluate(predicted, labels, int(np.prod(net.output_shape)))
    try:
        labels = label_map(labels, net.output_shape[:2])
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return evaluate_map(predicted, labels, classes)
