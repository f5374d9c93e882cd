"""Argmax: the index of a vector's largest value, ties to the lowest index."""

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.pipeline import pipeline_control
from hw.streamutil import check_encoding, check_positive_int

__all__ = ["Argmax", "check_stages", "default_stages", "stage_cuts"]


def default_stages(count, *, registered_input=False):
    """Pipeline stages of an argmax of ``count`` scores when none are chosen: a register after
    every comparison and after every selection of the tournament (at least one), and with
    ``registered_input`` one more on the scores as they arrive (for scores that come out of a
    multiplexer, as a folded engine's output queue gives them).

    A level is a compare (a carry chain as wide as a score) and a multiplexer: about 13 ns on
    an iCE40 UP5K (two levels per cycle set digits-mlp's clock to 16.6 MHz) and 8.5 ns on an
    ECP5, where one level per cycle was the slowest path of TFC at FINN's folding (117 MHz);
    with a register after each step, the slowest (8.2 ns, 122 MHz) was the first comparison
    straight after the last layer's output-queue multiplexer.
    """
    steps = 2 * ceil_log2(count)
    return steps + 1 if registered_input or not steps else steps


def stage_cuts(levels, stages):
    """The steps a register follows, of a tournament of ``levels`` levels with ``stages``
    registers: step 0 is the scores as they arrive, steps ``2k - 1`` and ``2k`` are level k's
    comparison and selection. ``2 * levels + 1`` stages register every step, fewer split the
    ``2 * levels`` steps evenly, the last at the output."""
    steps = 2 * levels
    if stages == steps + 1:
        return set(range(steps + 1))
    return {-(-k * steps // stages) for k in range(1, stages + 1)}


def check_stages(stages, count, what):
    """``stages`` if it is a valid pipeline depth of a tournament of ``count`` candidates
    (``what``, for the message: scores, channels), from 0 to ``2 * ceil(log2(count)) + 1``."""
    if not isinstance(stages, int) or isinstance(stages, bool):
        raise TypeError(f"Stages must be an integer, not {stages!r}")
    most = 2 * ceil_log2(count) + 1
    if not 0 <= stages <= most:
        raise ValueError(f"Stages must be between 0 and {most} for {count} {what}, not {stages}")
    return stages


class Argmax(wiring.Component):
    """The class index of a vector of scores, as a tournament tree.

    Candidates meet in pairs, level by level (``ceil(log2(count))`` levels); of two candidates the
    one from higher indices wins only if its value is strictly greater, so ties go to the
    lowest index, as ``numpy.argmax`` does. Values compare as the integers they carry (binary:
    1 = +1 beats 0 = -1). Each level is two steps, the comparison and the selection, and a
    pipeline register may follow either.

    Parameters
    ----------
    encoding : ValueEncoding
        Encoding of the scores.
    count : int
        Number of scores per vector.
    stages : int
        Pipeline registers, ``0`` (combinational, ``o.valid`` follows ``i.valid``) to
        ``2 * levels + 1``; the last one is at the output, the others split the levels'
        ``2 * levels`` steps evenly (``levels`` registers: one after each level), and
        ``2 * levels + 1`` registers the scores as they arrive too.

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
        self._stages = check_stages(stages, count, "scores")
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
        cuts = stage_cuts(self._levels, self._stages)

        # Candidates are (value, index); the pipeline moves as one while the output can take.
        advance = pipeline_control(m, self.i, self.o, self._stages)
        candidates = [(self.i.payload[k], Const(k, index_shape)) for k in range(self._count)]

        shapes = {"value": value_shape, "index": index_shape, "right": unsigned(1)}

        def register(signals, kinds, suffix):
            held = []
            for signal, kind in zip(signals, kinds, strict=True):
                reg = Signal(shapes[kind], name=f"{kind}_{suffix}")
                with m.If(advance):
                    m.d.sync += reg.eq(signal)
                held.append(reg)
            return tuple(held)

        def hold(candidates, level):
            return [
                register(candidate, ("value", "index"), f"l{level}_{k}")
                for k, candidate in enumerate(candidates)
            ]

        step = 0
        if 0 in cuts:  # the scores as they arrive; their indices stay constants
            candidates = [
                (register((value,), ("value",), f"in_{k}")[0], index)
                for k, (value, index) in enumerate(candidates)
            ]
        while len(candidates) > 1:
            level = step // 2 + 1
            # comparison: the right (higher-index) candidate wins only if strictly greater
            pairs = [
                (va, ia, vb, ib, vb > va)
                for (va, ia), (vb, ib) in zip(candidates[0::2], candidates[1::2], strict=False)
            ]
            rest = [candidates[-1]] if len(candidates) % 2 else []
            step += 1
            if step in cuts:
                kinds = ("value", "index", "value", "index", "right")
                pairs = [register(pair, kinds, f"c{level}_{k}") for k, pair in enumerate(pairs)]
                rest = [register(c, ("value", "index"), f"c{level}_rest") for c in rest]
            # selection
            candidates = []
            for k, (va, ia, vb, ib, right) in enumerate(pairs):
                value = Signal(value_shape, name=f"max_l{level}_{k}")
                index = Signal(index_shape, name=f"arg_l{level}_{k}")
                m.d.comb += [value.eq(Mux(right, vb, va)), index.eq(Mux(right, ib, ia))]
                candidates.append((value, index))
            candidates += rest
            step += 1
            if step in cuts:
                candidates = hold(candidates, level)

        ((_, index),) = candidates
        m.d.comb += self.o.payload.eq(index)
        return m
