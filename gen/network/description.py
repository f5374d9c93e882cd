"""The network description, formats ``tnn/1`` and ``tnn/2``, as Python objects: value types,
layers, networks.

``tnn/2`` is a strict superset of ``tnn/1``: it adds ``intN`` weights (N = 2..8) and the
per-position ``class_map`` output. A network that uses neither is a ``tnn/1`` network and is
saved as one (:attr:`Network.format`).

A :class:`Network` is what :func:`gen.network.load` returns once a document is valid
(``gen.network.validate``); every problem in a document is a :class:`DescriptionError` naming
the file, the place in the document (``layers[2].thresholds[5]``) and what is wrong.
"""

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "FORMAT",
    "FORMAT_2",
    "FORMATS",
    "WEIGHT_TYPES",
    "INT_WEIGHT_TYPES",
    "OUTPUTS",
    "int_weight_bits",
    "DescriptionError",
    "ValueType",
    "InputSpec",
    "Activation",
    "WeightedLayer",
    "Dense",
    "Conv2d",
    "MaxPool",
    "Network",
    "shown",
]

FORMAT = "tnn/1"
FORMAT_2 = "tnn/2"
#: The formats this tool reads; it writes the first that can hold a network.
FORMATS = (FORMAT, FORMAT_2)

#: ``intN`` weights: N-bit two's complement integers (TTQ's {-n, 0, +p}, QNN/DoReFa weights).
INT_WEIGHT_TYPES = tuple(f"int{n}" for n in range(2, 9))
WEIGHT_TYPES = ("ternary", "binary") + INT_WEIGHT_TYPES
#: ``class_map``: per position of an ``[h, w, c]`` output, the index of its largest channel.
OUTPUTS = ("argmax", "values", "class_map")


def int_weight_bits(weight_type):
    """N of an ``intN`` weight type, else None."""
    return int(weight_type[3:]) if weight_type in INT_WEIGHT_TYPES else None


def shown(value, limit=60):
    """``repr(value)``, cut to about ``limit`` characters: messages quote what a user wrote,
    which may be a string of a million characters."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 15]}...({len(text)} characters)"


class DescriptionError(ValueError):
    """A malformed network description.

    Attributes
    ----------
    source : str or None
        The file the description came from.
    where : str
        The place in the document, e.g. ``layers[1].weights[3]``; empty for the whole document.
    problem : str
        What is wrong.
    """

    def __init__(self, problem, *, where="", source=None):
        self.problem = problem
        self.where = where
        self.source = source
        super().__init__(self._message())

    def _message(self):
        head = ": ".join(part for part in (self.source, self.where) if part)
        return f"{head}: {self.problem}" if head else self.problem

    def located(self, source):
        """The same error, naming the file ``source``."""
        return DescriptionError(self.problem, where=self.where, source=source)


# --- value types ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueType:
    """The set of values a tensor may hold: an input type or a layer's output.

    ``name`` is ``ternary``, ``binary``, ``uintN`` or ``intN`` for declared types; ``levels`` is
    the ascending tuple of values an activation produces (``None`` for a plain integer range).
    ``lo`` and ``hi`` bound every value.
    """

    name: str
    lo: int
    hi: int
    levels: tuple | None = None

    @classmethod
    def parse(cls, name, *, where="input.type"):
        if not isinstance(name, str):
            raise DescriptionError(f"must be a string, not {shown(name)}", where=where)
        if name == "ternary":
            return cls("ternary", -1, 1, (-1, 0, 1))
        if name == "binary":
            return cls("binary", -1, 1, (-1, 1))
        for prefix in ("uint", "int"):
            digits = name[len(prefix) :]
            # ASCII digits only ('uint²' is not a width), and few of them: int() of thousands of
            # digits is refused by Python itself.
            plain = digits.isascii() and digits.isdigit() and len(digits) <= 3
            if name.startswith(prefix) and plain and digits == str(int(digits)):
                bits = int(digits)
                if not 1 <= bits <= 16:
                    raise DescriptionError(
                        f"{shown(name)}: the width of {prefix}N must be 1 to 16, not {bits}",
                        where=where,
                    )
                if prefix == "uint":
                    return cls(name, 0, (1 << bits) - 1)
                return cls(name, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        raise DescriptionError(
            f"unknown type {shown(name)}; expected ternary, binary, uintN or intN (N = 1..16)",
            where=where,
        )

    @classmethod
    def of_levels(cls, levels):
        levels = tuple(int(v) for v in levels)
        if levels == (-1, 0, 1):
            return cls("ternary", -1, 1, levels)
        if levels == (-1, 1):
            return cls("binary", -1, 1, levels)
        return cls("levels", levels[0], levels[-1], levels)

    @classmethod
    def of_range(cls, lo, hi):
        return cls("integer", int(lo), int(hi))

    def contains(self, values):
        """Boolean array: which of ``values`` belong to this type."""
        values = np.asarray(values)
        if self.levels is not None:
            return np.isin(values, self.levels)
        return (values >= self.lo) & (values <= self.hi)

    def enumerate(self):
        """Every value of the type, ascending (for brute force on small cases)."""
        if self.levels is not None:
            return list(self.levels)
        return list(range(self.lo, self.hi + 1))


# --- layers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputSpec:
    shape: tuple
    type: ValueType


@dataclass(frozen=True, eq=False)
class Activation:
    """``y[j] = levels[k]``, ``k`` the number of ``thresholds[j]`` that ``acc[j]`` reaches."""

    levels: tuple
    thresholds: np.ndarray  # (out, len(levels) - 1), int64, each row ascending

    def __eq__(self, other):
        return (
            isinstance(other, Activation)
            and self.levels == other.levels
            and np.array_equal(self.thresholds, other.thresholds)
        )

    @property
    def value_type(self):
        return ValueType.of_levels(self.levels)


@dataclass(frozen=True, eq=False)
class WeightedLayer:
    out: int
    weights: np.ndarray  # (out, fan_in), int8: {-1, 0, 1}, or the integers of intN
    activation: Activation | None
    weight_type: str

    def __eq__(self, other):
        return (
            type(self) is type(other)
            and all(
                getattr(self, f) == getattr(other, f)
                for f in self.__dataclass_fields__
                if f != "weights"
            )
            and np.array_equal(self.weights, other.weights)
        )

    @property
    def fan_in(self):
        return self.weights.shape[1]

    @property
    def max_row_weight(self):
        """The largest ``sum_i |W[j][i]|`` of a row: the accumulator's gain over its input's
        magnitude (the fan-in for ternary and binary rows without zeros)."""
        return int(np.abs(self.weights.astype(np.int64)).sum(axis=1).max(initial=0))


@dataclass(frozen=True, eq=False)
class Dense(WeightedLayer):
    type: str = field(default="dense", init=False)


@dataclass(frozen=True, eq=False)
class Conv2d(WeightedLayer):
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    pad: int = 0
    type: str = field(default="conv2d", init=False)


@dataclass(frozen=True)
class MaxPool:
    kernel: tuple
    stride: tuple
    type: str = field(default="maxpool", init=False)


@dataclass(frozen=True)
class Network:
    """A validated ``tnn/1`` or ``tnn/2`` description.

    ``shapes[l]`` is the shape of the tensor entering layer ``l`` (``shapes[0]`` the input,
    ``shapes[-1]`` the final layer's output); ``types[l]`` likewise its value type.
    ``source_sha256`` is the sha256 (hex) of the bytes of the file or text it was read from,
    or None for a network built in memory; ``ranges`` its range analysis
    (:func:`gen.network.ranges.analyze_ranges`), computed once while it is validated.
    """

    name: str
    input: InputSpec
    layers: tuple
    output: str
    shapes: tuple = field(compare=False, repr=False)
    types: tuple = field(compare=False, repr=False)
    source_sha256: str | None = field(default=None, compare=False, repr=False)
    ranges: tuple | None = field(default=None, compare=False, repr=False)

    @property
    def output_shape(self):
        return self.shapes[-1]

    @property
    def format(self):
        """``tnn/2`` when the network uses ``intN`` weights or the ``class_map`` output, else
        ``tnn/1``: the format it is saved in."""
        wide = any(getattr(layer, "weight_type", "") in INT_WEIGHT_TYPES for layer in self.layers)
        return FORMAT_2 if wide or self.output == "class_map" else FORMAT
