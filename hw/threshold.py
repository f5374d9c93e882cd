"""Threshold activations: integer accumulators to quantized levels.

A row's activation is given by ascending output ``levels`` and ``len(levels) - 1`` ascending
integer ``thresholds``: ``y = levels[k]``, where ``k`` is the number of thresholds ``t`` with
``acc >= t`` (DESIGN.md, format ``tnn/1``). Batch norm, scales and biases are already folded into
the thresholds.

Two forms share one implementation:

- :func:`threshold_level`, a combinational expression for use inside another block, whose
  thresholds are constants or signals (e.g. read from a ROM in a folded engine);
- :class:`ThresholdUnit`, a stream block with one constant threshold row per vector element.
"""

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, Value, ValueCastable
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.encoding import ValueEncoding
from hw.pipeline import pipeline_control
from hw.streamutil import check_shape

__all__ = [
    "check_levels",
    "check_thresholds",
    "levels_encoding",
    "registered_levels",
    "select_level",
    "threshold_compares",
    "threshold_level",
    "ThresholdUnit",
]


def check_levels(levels):
    """Return ``levels`` as a tuple of ints, or raise if they are not ascending integers."""
    try:
        items = tuple(levels)
    except TypeError:
        raise TypeError(f"Levels must be a sequence of integers, not {levels!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in items):
        raise TypeError(f"Levels must be a sequence of integers, not {levels!r}")
    items = tuple(int(v) for v in items)
    if len(items) < 2 or any(a >= b for a, b in zip(items[:-1], items[1:], strict=True)):
        raise ValueError(f"Levels must be at least two strictly ascending integers, not {items!r}")
    return items


def levels_encoding(levels):
    """The :class:`~hw.encoding.ValueEncoding` that carries the activation's output values.

    ``(-1, 0, 1)`` is ``ternary`` and ``(-1, 1)`` is ``binary``; any other levels are carried as
    themselves, in the narrowest ``uintN``/``intN`` holding ``levels[0]`` to ``levels[-1]``
    (e.g. ``(0, 1, 2, 3)`` is ``uint2``).
    """
    levels = check_levels(levels)
    if levels == (-1, 0, 1):
        return ValueEncoding.ternary()
    if levels == (-1, 1):
        return ValueEncoding.binary()
    return ValueEncoding.for_range(levels[0], levels[-1])


def check_thresholds(thresholds, levels):
    """Return ``thresholds`` as an int64 array of shape ``(rows, len(levels) - 1)``, or raise.

    Each row must be ascending (equal neighbours are allowed: the level between them is never
    produced).
    """
    levels = check_levels(levels)
    array = np.asarray(thresholds)
    if array.dtype.kind not in "iu" or array.ndim != 2:
        raise TypeError(f"Thresholds must be a 2-D array of integers, not {thresholds!r}")
    if array.shape[1] != len(levels) - 1:
        raise ValueError(
            f"Thresholds must have {len(levels) - 1} per row (one fewer than the levels), "
            f"not {array.shape[1]}"
        )
    if array.shape[0] < 1:
        raise ValueError("Thresholds must have at least one row")
    array = array.astype(np.int64)
    for row, values in enumerate(array):
        if np.any(np.diff(values) < 0):
            raise ValueError(f"Thresholds of row {row} must be ascending, not {values.tolist()!r}")
    return array


def _level_const(encoding, level):
    if encoding.kind == "binary":
        return Const(int(level > 0), encoding.shape)
    return Const(level, encoding.shape)


def _shape_range(shape):
    shape = Shape.cast(shape)
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def threshold_compares(acc, thresholds, *, acc_range=None):
    """The comparisons ``acc >= t`` of one accumulator with each of its ``thresholds``.

    Parameters
    ----------
    acc : value-like
        The accumulator, signed or unsigned.
    thresholds : sequence
        Thresholds in ascending order, each an ``int`` (a constant) or a value-like (e.g. a
        ROM's read data).
    acc_range : tuple of int, optional
        ``(lo, hi)``, the values ``acc`` can actually take, if narrower than its shape.

    Returns
    -------
    list
        Per threshold, a 1-bit value, or ``True``/``False`` for a constant threshold at or below
        the lowest reachable ``acc`` (always met) or above the highest (never met), which costs
        no comparator; the others compare at ``acc``'s own width.
    """
    acc = Value.cast(acc)
    lo, hi = _shape_range(acc.shape())
    if acc_range is not None:
        lo, hi = max(lo, int(acc_range[0])), min(hi, int(acc_range[1]))
    compares = []
    for threshold in thresholds:
        if isinstance(threshold, (Value, ValueCastable)):
            compares.append(acc >= threshold)
        elif int(threshold) <= lo:
            compares.append(True)
        elif int(threshold) <= hi:
            compares.append(acc >= Const(int(threshold), acc.shape()))
        else:
            compares.append(False)
    return compares


def select_level(compares, levels):
    """The level that :func:`threshold_compares`' results select: ``levels[k]`` in
    :func:`levels_encoding` of ``levels``, ``k`` the number of comparisons met."""
    levels = check_levels(levels)
    if len(compares) != len(levels) - 1:
        raise ValueError(
            f"Thresholds must have {len(levels) - 1} per row (one fewer than the levels), "
            f"not {len(compares)}"
        )
    encoding = levels_encoding(levels)
    result = _level_const(encoding, levels[0])
    # Later (higher) thresholds take priority; with ascending thresholds a met threshold implies
    # every earlier one is met, so the outermost met comparison selects the level.
    for met, level in zip(compares, levels[1:], strict=True):
        level = _level_const(encoding, level)
        if met is True:
            result = level
        elif met is not False:
            result = Mux(met, level, result)
    return result


def registered_levels(m, accs, thresholds, levels, *, acc_range=None, enable=1):
    """The levels of ``accs`` (one per row, each with its ``thresholds``), one register later:
    the comparisons (:func:`threshold_compares`) are registered while ``enable`` is 1, all
    but those a constant threshold decides, and the levels selected after the register
    (:func:`select_level`), so that the accumulator's and the comparators' carry chains and
    the selection are not one path."""
    compares = [
        threshold_compares(acc, row, acc_range=acc_range)
        for acc, row in zip(accs, thresholds, strict=True)
    ]
    held = [c for row in compares for c in row if not isinstance(c, bool)]
    registered = Signal(max(1, len(held)), name="compares")
    if held:
        with m.If(enable):
            m.d.sync += registered.eq(Cat(*held))
    bits = iter(range(len(held)))
    return [
        select_level([c if isinstance(c, bool) else registered[next(bits)] for c in row], levels)
        for row in compares
    ]


def threshold_level(acc, thresholds, levels, *, acc_range=None):
    """Combinational threshold activation of one accumulator.

    Parameters
    ----------
    acc : value-like
        The accumulator, signed or unsigned.
    thresholds : sequence
        ``len(levels) - 1`` thresholds in ascending order, each an ``int`` (a constant) or a
        value-like (e.g. a ROM's read data). Ascending order of signal thresholds is the
        caller's promise.
    levels : sequence of int
        Strictly ascending output values.
    acc_range : tuple of int, optional
        ``(lo, hi)``, the values ``acc`` can actually take, if narrower than its shape.

    Returns
    -------
    Value
        ``levels[k]`` in :func:`levels_encoding` of ``levels``, ``k`` = the number of thresholds
        ``t`` with ``acc >= t``: :func:`select_level` of :func:`threshold_compares`.
    """
    levels = check_levels(levels)
    thresholds = list(thresholds)
    if len(thresholds) != len(levels) - 1:
        raise ValueError(
            f"Thresholds must have {len(levels) - 1} per row (one fewer than the levels), "
            f"not {len(thresholds)}"
        )
    return select_level(threshold_compares(acc, thresholds, acc_range=acc_range), levels)


class ThresholdUnit(wiring.Component):
    """Threshold activation of a vector of accumulators, with constant thresholds per row.

    Parameters
    ----------
    acc_shape : shape-like
        Shape of one accumulator (e.g. ``signed(8)``); no value outside it can occur.
    thresholds : array-like of int, shape ``(n, len(levels) - 1)``
        Row ``j`` holds the ascending thresholds of element ``j``.
    levels : sequence of int
        Strictly ascending output values, shared by all rows.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(acc_shape, n)))``
        One vector of accumulators per transfer.
    o : ``Out(stream.Signature(data.ArrayLayout(output_encoding.shape, n)))``
        The activations, element ``j`` from row ``j``.

    Attributes
    ----------
    output_encoding : ValueEncoding
        :func:`levels_encoding` of ``levels``.
    latency : int
        3: the accumulators are registered, then their comparisons, then the activations.
        ``initiation_interval`` is 1; the whole pipeline stalls together while ``o`` is not
        ready.

    Raises
    ------
    TypeError, ValueError
        If ``levels`` are not strictly ascending integers, or ``thresholds`` not a 2-D integer
        array with ``len(levels) - 1`` ascending values per row.
    """

    def __init__(self, *, acc_shape, thresholds, levels):
        acc_shape = check_shape(acc_shape, "Accumulator shape")
        self._levels = check_levels(levels)
        self._thresholds = check_thresholds(thresholds, self._levels)
        self._acc_shape = acc_shape
        self._encoding = levels_encoding(self._levels)
        rows = self._thresholds.shape[0]
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(acc_shape, rows))),
                "o": Out(stream.Signature(self._encoding.layout(rows))),
            }
        )

    @property
    def output_encoding(self):
        return self._encoding

    @property
    def latency(self):
        return 3

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        advance = pipeline_control(m, self.i, self.o, self.latency)
        # Three registers: the accumulators, the comparisons, the levels. The last adders of a
        # dot product before this unit, its comparisons' carry chains and the level selection
        # were otherwise one path (27.8 ns in digits-mlp on an iCE40 UP5K; the comparisons and
        # the selection alone, 21.1 ns).
        acc = Signal.like(self.i.payload)
        with m.If(advance):
            m.d.sync += acc.eq(self.i.payload)
        rows = range(len(self._thresholds))
        levels = registered_levels(
            m, [acc[j] for j in rows], self._thresholds.tolist(), self._levels, enable=advance
        )
        with m.If(advance):
            m.d.sync += [self.o.payload[j].eq(levels[j]) for j in rows]
        return m
