"""Stream payloads of a generated accelerator: element values packed into integers and back.

Element ``k`` of a payload occupies bits ``[k*width, (k+1)*width)`` (docs/accelerator.md);
:class:`Encoding` packs and unpacks whole batches of vectors with NumPy, for the test vectors of
an accelerator folder (:mod:`gen.folder`) and the cocotb bench (:mod:`sim.bench`).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Encoding", "KINDS"]

#: The element kinds a payload can carry.
KINDS = ("ternary", "binary", "uint", "int")
_CHUNK = 1024  # vectors packed or unpacked per NumPy batch, to bound memory


@dataclass(frozen=True)
class Encoding:
    """How the elements of one stream payload are carried (``docs/accelerator.md``).

    Element ``k`` occupies bits ``[k*width, (k+1)*width)``. Ternary values are 2-bit two's
    complement (-1 = ``0b11``, 0 = ``0b00``, +1 = ``0b01``), binary values one bit (1 = +1,
    0 = -1), ``uint`` and ``int`` values themselves (``int`` in two's complement).

    Parameters
    ----------
    kind : str
        ``"ternary"``, ``"binary"``, ``"uint"`` or ``"int"``.
    width : int
        Bits per element.
    count : int
        Elements in one payload.
    """

    kind: str
    width: int
    count: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Encoding must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for field in ("width", "count"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Encoding {field} must be a positive integer, not {value!r}")
        fixed = {"ternary": 2, "binary": 1}.get(self.kind)
        if fixed is not None and self.width != fixed:
            raise ValueError(f"A {self.kind} element is {fixed} bits wide, not {self.width}")
        if self.kind == "int" and self.width < 2:
            raise ValueError(f"An int element is at least 2 bits wide, not {self.width}")

    @property
    def payload_width(self):
        """Bits in one payload: ``count * width``."""
        return self.count * self.width

    @property
    def value_range(self):
        """The ``(lowest, highest)`` value an element can carry."""
        if self.kind == "ternary":
            return -1, 1
        if self.kind == "binary":
            return -1, 1
        if self.kind == "uint":
            return 0, (1 << self.width) - 1
        return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1

    def invalid(self, values):
        """A boolean mask of the elements of ``values`` this encoding cannot carry."""
        values = np.asarray(values)
        if self.kind == "binary":
            return (values != -1) & (values != 1)
        lo, hi = self.value_range
        return (values < lo) | (values > hi)

    def pack(self, values):
        """Payload integers for a batch of vectors.

        Parameters
        ----------
        values : array_like of int, shape ``(N, count)``
            Element values (not bit patterns).

        Returns
        -------
        list of int
            ``N`` non-negative payloads of ``payload_width`` bits.

        Raises
        ------
        ValueError
            If the shape is wrong or a value is outside the encoding's range.
        """
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.count:
            raise ValueError(
                f"Expected values of shape (N, {self.count}), not {tuple(values.shape)}"
            )
        bad = self.invalid(values)
        if bad.any():
            n, k = (int(a) for a in np.argwhere(bad)[0])
            raise ValueError(
                f"Vector {n}, element {k}: {int(values[n, k])} is not a {self.kind} value "
                f"of {self.width} bits"
            )
        if self.kind == "binary":
            fields = (values > 0).astype(np.uint64)
        else:
            fields = (values.astype(np.int64) & ((1 << self.width) - 1)).astype(np.uint64)
        shifts = np.arange(self.width, dtype=np.uint64)
        payloads = []
        for start in range(0, len(fields), _CHUNK):
            chunk = fields[start : start + _CHUNK]
            bits = ((chunk[:, :, None] >> shifts) & np.uint64(1)).astype(np.uint8)
            packed = np.packbits(bits.reshape(len(chunk), -1), axis=1, bitorder="little")
            payloads.extend(int.from_bytes(row.tobytes(), "little") for row in packed)
        return payloads

    def unpack(self, payloads):
        """Element values of a batch of payloads; the inverse of :meth:`pack`.

        A ternary field ``0b10`` (no legal value) decodes as -2, so that it shows in reports.

        Parameters
        ----------
        payloads : sequence of int
            Non-negative payloads of at most ``payload_width`` bits.

        Returns
        -------
        numpy.ndarray of int64, shape ``(N, count)``
        """
        nbits = self.payload_width
        nbytes = (nbits + 7) // 8
        out = np.empty((len(payloads), self.count), dtype=np.int64)
        weights = np.int64(1) << np.arange(self.width, dtype=np.int64)
        for start in range(0, len(payloads), _CHUNK):
            chunk = payloads[start : start + _CHUNK]
            for payload in chunk:
                if payload < 0 or payload >> nbits:
                    raise ValueError(f"Payload {payload:#x} does not fit in {nbits} bits")
            raw = np.frombuffer(b"".join(p.to_bytes(nbytes, "little") for p in chunk), np.uint8)
            bits = np.unpackbits(raw.reshape(len(chunk), nbytes), axis=1, bitorder="little")
            bits = bits[:, :nbits].reshape(len(chunk), self.count, self.width).astype(np.int64)
            out[start : start + len(chunk)] = bits @ weights
        if self.kind == "binary":
            return 2 * out - 1
        if self.kind in ("ternary", "int"):
            sign = np.int64(1) << (self.width - 1)
            return (out ^ sign) - sign
        return out
