"""Re-typing a vector stream between blocks whose element shapes differ.

A block may carry a value in a wider (or signed) shape than the next block takes, e.g. an
accumulator sign-extended to a common width, entering a layer whose input encoding is the
narrowest that holds the value's range. :class:`Cast` converts each element, combinationally;
it is only correct when every value fits the target shape, which the compiler guarantees from
its range analysis.
"""

from amaranth.hdl import Module
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.streamutil import check_positive_int, check_shape

__all__ = ["Cast"]


class Cast(wiring.Component):
    """Element-wise conversion of a vector stream from ``source`` to ``target`` shapes.

    Parameters
    ----------
    source, target : shape-like
        Element shapes of the input and output vectors.
    count : int
        Elements per vector.

    Members
    -------
    i : ``In(stream.Signature(data.ArrayLayout(source, count)))``
    o : ``Out(stream.Signature(data.ArrayLayout(target, count)))``
        Element ``k`` of ``o`` is element ``k`` of ``i``, as a value of ``target`` (sign- or
        zero-extended, or truncated). ``valid`` and ``ready`` pass through.

    Attributes
    ----------
    latency : int
        0 (combinational). ``initiation_interval`` is 1.
    """

    def __init__(self, *, source, target, count):
        self._source = check_shape(source, "Source shape")
        self._target = check_shape(target, "Target shape")
        self._count = check_positive_int(count, "Count")
        super().__init__(
            {
                "i": In(stream.Signature(data.ArrayLayout(self._source, self._count))),
                "o": Out(stream.Signature(data.ArrayLayout(self._target, self._count))),
            }
        )

    @property
    def latency(self):
        return 0

    @property
    def initiation_interval(self):
        return 1

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
        ]
        for k in range(self._count):
            m.d.comb += self.o.payload[k].eq(self.i.payload[k])
        return m
