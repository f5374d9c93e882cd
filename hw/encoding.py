"""Encodings of network values on the wires of blocks and accelerators.

At block boundaries a value is carried as fixed in DESIGN.md: ternary as 2-bit two's complement
(-1 = ``0b11``, 0 = ``0b00``, +1 = ``0b01``), binary as one bit (1 = +1, 0 = -1), ``uintN`` and
``intN`` as themselves. A vector of ``n`` values is packed with element ``k`` at bits
``[k*b, (k+1)*b)``, which is exactly ``data.ArrayLayout(shape, n)``.
"""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import C, Cat, Shape, signed, unsigned
from amaranth.lib import data

__all__ = ["ValueEncoding", "ternary_split", "signed_value"]

_KINDS = ("ternary", "binary", "uint", "int")


@dataclass(frozen=True)
class ValueEncoding:
    """How one network value is carried in hardware.

    Parameters
    ----------
    kind : str
        ``"ternary"``, ``"binary"``, ``"uint"`` or ``"int"``.
    width : int
        Bits per value: 2 for ternary, 1 for binary, ``N`` for ``uintN`` / ``intN``.
    """

    kind: str
    width: int

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"Encoding kind must be one of {_KINDS}, not {self.kind!r}")
        if not isinstance(self.width, int) or isinstance(self.width, bool):
            raise TypeError(f"Encoding width must be an integer, not {self.width!r}")
        fixed = {"ternary": 2, "binary": 1}.get(self.kind)
        if fixed is not None and self.width != fixed:
            raise ValueError(f"A {self.kind} encoding is {fixed} bits wide, not {self.width}")
        if self.width < 1 or (self.kind == "int" and self.width < 2):
            raise ValueError(f"Encoding width must be positive, not {self.width!r}")

    # --- constructors --------------------------------------------------------------------------
    @classmethod
    def ternary(cls):
        return cls("ternary", 2)

    @classmethod
    def binary(cls):
        return cls("binary", 1)

    @classmethod
    def uint(cls, width):
        return cls("uint", width)

    @classmethod
    def int(cls, width):
        return cls("int", width)

    @classmethod
    def for_range(cls, lo, hi):
        """The narrowest ``uint``/``int`` encoding holding every integer in ``[lo, hi]``."""
        lo, hi = int(lo), int(hi)
        if lo > hi:
            raise ValueError(f"Empty range [{lo}, {hi}]")
        if lo >= 0:
            return cls("uint", max(1, hi.bit_length()))
        width = max((-lo - 1).bit_length(), hi.bit_length() if hi > 0 else 0) + 1
        return cls("int", max(2, width))

    # --- properties ----------------------------------------------------------------------------
    @property
    def shape(self) -> Shape:
        """The Amaranth shape of one value on the wire."""
        if self.kind in ("ternary", "int"):
            return signed(self.width)
        return unsigned(self.width)

    @property
    def name(self):
        """The type's name in a network description: ``ternary``, ``binary``, ``uint4``..."""
        return self.kind if self.kind in ("ternary", "binary") else f"{self.kind}{self.width}"

    @property
    def min(self):
        return {
            "ternary": -1,
            "binary": -1,
            "uint": 0,
            "int": -(1 << (self.width - 1)),
        }[self.kind]

    @property
    def max(self):
        return {
            "ternary": 1,
            "binary": 1,
            "uint": (1 << self.width) - 1,
            "int": (1 << (self.width - 1)) - 1,
        }[self.kind]

    def layout(self, count):
        """``data.ArrayLayout`` of a vector of ``count`` values."""
        return data.ArrayLayout(self.shape, count)

    # --- NumPy side ----------------------------------------------------------------------------
    def check(self, values):
        """Raise ``ValueError`` unless every value is representable in this encoding."""
        values = np.asarray(values)
        if self.kind == "binary":
            bad = (values != 1) & (values != -1)
        else:
            bad = (values < self.min) | (values > self.max)
        if np.any(bad):
            first = int(values[bad].flat[0])
            raise ValueError(f"Value {first!r} is not a valid {self.name} value")

    def encode(self, values):
        """Bit patterns (as unsigned integers) of ``values``, elementwise."""
        values = np.asarray(values, dtype=np.int64)
        self.check(values)
        if self.kind == "binary":
            return (values > 0).astype(np.uint64)
        return (values & ((1 << self.width) - 1)).astype(np.uint64)

    def decode(self, bits):
        """Values of bit patterns ``bits``, elementwise (inverse of :meth:`encode`)."""
        bits = np.asarray(bits, dtype=np.int64) & ((1 << self.width) - 1)
        if self.kind == "binary":
            return np.where(bits != 0, 1, -1).astype(np.int64)
        if self.kind in ("ternary", "int"):
            return np.where(bits >= (1 << (self.width - 1)), bits - (1 << self.width), bits)
        return bits

    def pack(self, values):
        """One integer holding the vector ``values``, element ``k`` at bits ``[k*b, (k+1)*b)``."""
        word = 0
        for k, bits in enumerate(self.encode(np.ravel(values)).tolist()):
            word |= int(bits) << (k * self.width)
        return word

    def unpack(self, word, count):
        """The ``count`` values packed in the integer ``word`` (inverse of :meth:`pack`)."""
        word = int(word)
        mask = (1 << self.width) - 1
        bits = [(word >> (k * self.width)) & mask for k in range(count)]
        return self.decode(np.array(bits, dtype=np.int64))


def ternary_split(value):
    """The pair ``(pos, neg)`` of a 2-bit ternary value: ``pos`` for +1, ``neg`` for -1.

    With the encoding -1 = ``0b11``, 0 = ``0b00``, +1 = ``0b01``, ``neg`` is the sign bit and
    ``pos`` is the low bit without it; the two are never both set.
    """
    return value[0] & ~value[1], value[1]


def signed_value(value, encoding):
    """An Amaranth expression of the signed value carried by ``value`` in ``encoding``."""
    if encoding.kind == "binary":
        # 2b - 1 as 2-bit two's complement: b = 1 gives 0b01 (+1), b = 0 gives 0b11 (-1).
        return Cat(C(1, 1), ~value[0]).as_signed()
    return value
