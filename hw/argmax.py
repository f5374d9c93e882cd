"""Argmax: the index of a vector's largest value, ties to the lowest index."""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.pipeline import pipeline_control
from hw.streamutil import check_encoding, check_positive_int

__all__ = ["Argmax", "default_stages"]


def default_stages(count):
    """Pipeline stages of an argmax of ``count`` scores when none are chosen: a register after
    every level of the tournament (at least one).

    A level is a compare (a carry chain as wide as a score) and a multiplexer, about 13 ns on an
    iCE40 UP5K; two or more levels per cycle set the whole accelerator's clock (digits-mlp:
    16.6 MHz).
    """
    return max(1, ceil_log2(count))


class Argmax(wiring.Component):
    """The class index of a vector of scores, as a tournament tree.

    Candidates meet in pairs, level by level (``ceil(log2(count))`` levels); of two candidates the
    one from higher indices wins only if its value is strictly greater, so ties go to the
    lowest index, as ``numpy.argmax`` does. Values compare as the integers they carry (binary:
    1 = +1 beats 0 = -1).

    Parameters
    ----------
    encoding : ValueEncoding
        Encoding of the scores.
    count : int
        Number of scores per vector.
    stages : int
        Pipeline registers, ``0`` (combinational, ``o.valid`` follows ``i.valid``) to
        ``max(1, levels)``; the last one is at the output, the others split the levels evenly.

    Members
    -------
    i : ``In(stream.Signature(encoding.layout(count)))``
        One vector per transfer.
    o : ``Out(stream.Signature(unsigned(max(1, ceil_log2(count)))))``
        The index of its (first) largest element.

    Attributes
    ----------
    latency : int
        ``stages`` cycles. ``initiation_interval`` is 1; the whole pipeline stalls together
        while ``o`` is not ready.

    Raises
    ------
    TypeError, ValueError
        For malformed parameters or a ``stages`` outside its range.
    """

    def __init__(self, *, encoding, count, stages=0):
        self._encoding = check_encoding(encoding)
        self._count = check_positive_int(count, "Count")
        levels = ceil_log2(count)
        if not isinstance(stages, int) or isinstance(stages, bool):
            raise TypeError(f"Stages must be an integer, not {stages!r}")
        if not 0 <= stages <= max(1, levels):
            raise ValueError(
                f"Stages must be between 0 and {max(1, levels)} for {count} scores, not {stages}"
            )
        self._stages = stages
        self._levels = levels
        super().__init__(
            {
                "i": In(stream.Signature(encoding.layout(count))),
                "o": Out(stream.Signature(unsigned(max(1, levels)))),
            }
        )

    @property
    def latency(self):
        return self._stages

    @property
    def initiation_interval(self):
        return 1

    @property
    def index_shape(self):
        return unsigned(max(1, self._levels))

    def elaborate(self, platform):
        m = Module()
        index_shape = self.index_shape
        value_shape = self._encoding.shape
        # register after these levels (level 0 = the inputs, before any comparison)
        cuts = sorted({-(-k * self._levels // self._stages) for k in range(1, self._stages + 1)})

        # Candidates are (value, index); the pipeline moves as one while the output can take.
        advance = pipeline_control(m, self.i, self.o, self._stages)
        candidates = [(self.i.payload[k], Const(k, index_shape)) for k in range(self._count)]

        def register(candidates, level):
            held = []
            for k, (value, index) in enumerate(candidates):
                value_reg = Signal(value_shape, name=f"value_l{level}_{k}")
                index_reg = Signal(index_shape, name=f"index_l{level}_{k}")
                with m.If(advance):
                    m.d.sync += [value_reg.eq(value), index_reg.eq(index)]
                held.append((value_reg, index_reg))
            return held

        level = 0
        if 0 in cuts:  # only when there is nothing to compare (count == 1) and stages == 1
            candidates = register(candidates, level)
        while len(candidates) > 1:
            level += 1
            paired = []
            for k, ((va, ia), (vb, ib)) in enumerate(
                zip(candidates[0::2], candidates[1::2], strict=False)
            ):
                # the right (higher-index) candidate wins only if strictly greater
                right = vb > va
                value = Signal(value_shape, name=f"max_l{level}_{k}")
                index = Signal(index_shape, name=f"arg_l{level}_{k}")
                m.d.comb += [value.eq(Mux(right, vb, va)), index.eq(Mux(right, ib, ia))]
                paired.append((value, index))
            if len(candidates) % 2:
                paired.append(candidates[-1])
            candidates = paired
            if level in cuts:
                candidates = register(candidates, level)

        ((_, index),) = candidates
        m.d.comb += self.o.payload.eq(index)
        return m
