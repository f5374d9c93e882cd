"""What every pipelined block shares: stage checks, result shapes, registers by depth, and the
valid/ready control of a pipeline that stalls as a whole.

A pipelined tree (:mod:`hw.compressor`, :mod:`hw.addergraph`) cuts its depth in adders at
``stages`` evenly spaced levels (:func:`stage_of`) and registers every value crossing a cut
(:class:`PipelinedTree`); its result is valid ``stages`` cycles after its operands
(:func:`tree_latency`). A stream block around such a tree (:class:`hw.dotproduct.DotProduct`,
:class:`hw.adders.Popcount`, ...) moves all its stages together: :func:`pipeline_control`.
"""

import itertools

from amaranth.hdl import Mux, Signal, signed, unsigned

__all__ = [
    "check_stages",
    "counter_copies",
    "shape_for_range",
    "tree_latency",
    "stage_of",
    "PipelinedTree",
    "pipeline_control",
]


def check_stages(stages):
    """Raise ``TypeError`` or ``ValueError`` unless ``stages`` is a non-negative integer."""
    if not isinstance(stages, int) or isinstance(stages, bool):
        raise TypeError(f"Stages must be a non-negative integer, not {stages!r}")
    if stages < 0:
        raise ValueError(f"Stages must be a non-negative integer, not {stages!r}")


def shape_for_range(lo, hi):
    """The narrowest shape holding every integer in ``[lo, hi]`` (at least 1 bit wide)."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"Empty range [{lo}, {hi}]")
    if lo >= 0:
        return unsigned(max(1, hi.bit_length()))
    width = max((-lo - 1).bit_length(), hi.bit_length() if hi > 0 else 0) + 1
    return signed(width)


def tree_latency(stages):
    """Cycles from operands to the sum of a tree built with ``stages`` pipeline stages."""
    return stages


def stage_of(depth, total_depth, stages):
    """The pipeline stage of a node ``depth`` adders deep in a tree ``total_depth`` deep.

    The tree's depth is cut at ``stages`` evenly spaced levels; inputs (depth 0) are in stage 0.
    """
    if depth == 0 or total_depth == 0:
        return 0
    return (depth - 1) * (stages + 1) // total_depth


class PipelinedTree:
    """What the builders of pipelined trees share: stages by depth and delay registers.

    A node (anything with a ``depth`` in adders) is in stage :func:`stage_of` of its depth;
    :meth:`delay` gives its signal registered into a later stage, each register built once
    however many consumers need it. Registers load only while ``enable`` is 1 (None: always).
    """

    def __init__(self, m, *, domain, enable, name, stages, total_depth):
        self.m = m
        self.domain = domain
        self.enable = enable
        self.name = name
        self.stages = stages
        self.total_depth = total_depth
        self.delayed = {}
        self.count = itertools.count()

    def stage(self, node):
        return stage_of(node.depth, self.total_depth, self.stages)

    def register(self, value, name, shape=None):
        reg = Signal(value.shape() if shape is None else shape, name=name)
        stmt = reg.eq(value)
        if self.enable is None:
            self.m.d[self.domain] += stmt
        else:
            with self.m.If(self.enable):
                self.m.d[self.domain] += stmt
        return reg

    def delay(self, node, sig, stage):
        """``sig``, the value of ``node``, delayed from the node's stage to ``stage``."""
        for s in range(self.stage(node), stage):
            key = (id(node), s + 1)
            if key not in self.delayed:
                self.delayed[key] = self.register(sig, f"{self.name}_d{next(self.count)}")
            sig = self.delayed[key]
        return sig


def pipeline_control(m, i, o, stages):
    """Valid/ready handling of a ``stages``-deep pipeline; returns its advance enable.

    The whole pipeline moves while ``o`` is not holding a result that has not been taken, so a
    stall on ``o`` freezes every stage and nothing is lost or duplicated.
    """
    if stages == 0:
        m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready)]
        return None
    advance = Signal(name="advance")
    valid = [Signal(name=f"valid_{s}") for s in range(stages)]
    m.d.comb += [advance.eq(~o.valid | o.ready), i.ready.eq(advance), o.valid.eq(valid[-1])]
    with m.If(advance):
        m.d.sync += valid[0].eq(i.valid)
        for s in range(1, stages):
            m.d.sync += valid[s].eq(valid[s - 1])
    return advance


def counter_copies(m, steps, enable, count, name):
    """``count`` copies of a counter from 0 to ``steps - 1`` that steps, wrapping, while
    ``enable`` is 1: equal values in distinct registers, each for its own share of a wide
    fan-out. Each copy counts from its own value, so no two registers have the same inputs and
    synthesis (Yosys's ``opt_merge``) keeps them apart. The first is named ``name``."""
    copies = [
        Signal(range(steps), name=name if k == 0 else f"{name}_copy{k}") for k in range(count)
    ]
    with m.If(enable):
        for c in copies:
            m.d.sync += c.eq(Mux(c == steps - 1, 0, c + 1))
    return copies
