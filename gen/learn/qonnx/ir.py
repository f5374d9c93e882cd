"""The assembled form of a QONNX graph: its layers as the graph computes them, and the table
of operator handlers that builds them (:mod:`.patterns`, :mod:`.chain`)."""

from dataclasses import dataclass, field

import numpy as np

from .quantizers import Levels

__all__ = ["handler", "ChainOp", "Linear", "Pool", "Plan"]


def handler(table, *op_types):
    """Register the decorated function in ``table`` as the handler of ``op_types``."""

    def register(function):
        for op_type in op_types:
            table[op_type] = function
        return function

    return register


@dataclass(eq=False)
class ChainOp:
    """An elementwise op between a linear op and its quantizer (or before the input quantizer).

    ``consts`` maps input indices to constants reduced to one value per channel, shaped to
    broadcast against the evaluation tensor ``(n, channels, 1, ...)`` of rank ``rank``.
    """

    node: object
    data: int
    consts: dict
    rank: int
    kind: str = "ort"
    shape: tuple = ()


@dataclass(eq=False)
class Linear:
    """One weighted layer as the graph computes it."""

    node: object
    kind: str
    weights: np.ndarray
    weight_scale: np.ndarray
    weight_type: str
    weight_source: str
    bias: np.ndarray | None
    inputs: Levels
    out_rank: int
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    chain: list = field(default_factory=list)
    quantizer: object = None
    nodes: list = field(default_factory=list)
    out_levels: Levels | None = None
    calibrate: bool = False

    @property
    def out(self):
        return self.weights.shape[0]


@dataclass(frozen=True, eq=False)
class Pool:
    node: object
    kernel: tuple
    stride: tuple


@dataclass(eq=False)
class Plan:
    """The assembled graph: how inputs are prepared, the layers, and how the graph ends."""

    graph_input_shape: tuple
    input_shape: tuple
    input_layout: str
    preamble: list
    input_quantizer: object
    input_levels: Levels | None
    layers: list
    tail: object = None
    notes: list = field(default_factory=list)
