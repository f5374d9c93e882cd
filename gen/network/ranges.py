"""Range analysis of a ``tnn/1`` network: the bounds of every accumulator and output.

Each input element ranges over its declared type independently, and the bounds propagate element
by element through the same arithmetic as the golden model (:func:`gen.network.arith.layer_bounds`),
so that an all-zero row's constant output and an unreachable threshold are known exactly. The
accumulator widths of the hardware come from these bounds.
"""

from dataclasses import dataclass

import numpy as np

from hw.encoding import ValueEncoding

from . import arith
from .description import MaxPool

__all__ = ["LayerRange", "width_of", "analyze_ranges", "propagate"]


@dataclass(frozen=True)
class LayerRange:
    """Range analysis of one layer.

    ``acc_min``/``acc_max`` bound every accumulator of the layer (over outputs and positions);
    ``acc_min_per_output``/``acc_max_per_output`` per output neuron or channel. ``acc_bits`` is
    the width of a two's complement accumulator holding the range (``acc_signed``), or of an
    unsigned one when no accumulator can be negative. ``out_min``/``out_max`` bound the layer's
    outputs. For maxpool the accumulator fields are None.
    """

    acc_min: int | None
    acc_max: int | None
    acc_min_per_output: np.ndarray | None
    acc_max_per_output: np.ndarray | None
    acc_bits: int | None
    acc_signed: bool | None
    out_min: int
    out_max: int


def width_of(lo, hi):
    """``(bits, signed)`` of the narrowest integer holding every value in ``[lo, hi]``."""
    encoding = ValueEncoding.for_range(lo, hi)
    return encoding.width, encoding.kind == "int"


def analyze_ranges(net):
    """Range analysis: one :class:`LayerRange` per layer.

    Each input element ranges over its declared type, independently; the bounds propagate
    element by element (an all-zero row's constant output is known exactly, a threshold no
    accumulator can reach is never taken). For a network's first layer the accumulator bounds
    are exact: some legal input reaches each of them.
    """
    if net.ranges is not None:  # computed while the description was validated
        return list(net.ranges)
    lo = np.full((1,) + net.input.shape, net.input.type.lo, dtype=np.int64)
    hi = np.full((1,) + net.input.shape, net.input.type.hi, dtype=np.int64)
    ranges = []
    for layer in net.layers:
        layer_range, lo, hi = propagate(layer, lo, hi)
        ranges.append(layer_range)
    return ranges


def propagate(layer, lo, hi):
    """One layer of range analysis: ``(LayerRange, out_lo, out_hi)`` from the per-element bounds
    ``lo <= x <= hi`` of its input (batch axis of 1)."""
    acc_lo, acc_hi, lo, hi = arith.layer_bounds(layer, lo, hi)
    if isinstance(layer, MaxPool):
        return LayerRange(None, None, None, None, None, None, int(lo.min()), int(hi.max())), lo, hi
    per_lo = acc_lo.reshape(-1, layer.out).min(axis=0)
    per_hi = acc_hi.reshape(-1, layer.out).max(axis=0)
    bits, is_signed = width_of(per_lo.min(), per_hi.max())
    layer_range = LayerRange(
        int(per_lo.min()),
        int(per_hi.max()),
        per_lo,
        per_hi,
        bits,
        is_signed,
        int(lo.min()),
        int(hi.max()),
    )
    return layer_range, lo, hi
