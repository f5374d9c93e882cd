"""Handlers of the elementwise and shape operators: the affine chain between a linear op and its
activation quantizer (or before the input quantizer), and the ops allowed after a quantizer."""

from fractions import Fraction

import numpy as np

from .errors import UnsupportedGraph
from .ir import ChainOp, Linear, handler
from .quantizers import Levels

__all__ = ["HANDLERS", "ELEMENTWISE", "SHAPE_OPS"]

HANDLERS = {}
ELEMENTWISE = ("Add", "Sub", "Mul", "Div")
SHAPE_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


# --- elementwise ops -----------------------------------------------------------------------------


@handler(HANDLERS, *ELEMENTWISE)
def _elementwise(asm, step):
    node = step.node
    const_index = 1 - step.data
    if const_index not in step.static:
        raise UnsupportedGraph.at(node, "it needs one constant operand")
    if node.op_type == "Div" and step.data == 1:
        raise UnsupportedGraph.at(node, "a constant divided by the data is not monotone")
    if asm.stage == "quantized":
        _after_quantizer(asm, step, const_index)
        return
    consts = {const_index: asm.per_channel(step, const_index)}
    _chain(asm, step, consts)


def _after_quantizer(asm, step, const_index):
    """A scalar op after a quantizer: ``Mul``/``Div`` by a positive constant rescales its
    levels (FINN's activation scale), ``Add``/``Sub`` of a multiple of the step shifts them
    (FINN's ``MultiThreshold`` counts plus the lowest level)."""
    value = np.asarray(step.static[const_index].value, dtype=np.float32)
    op = step.op_type
    c = float(value.reshape(-1)[0])
    levels = asm.levels
    refuse = value.size != 1 or (op in ("Mul", "Div") and not c > 0) or step.data != 0
    shift = None
    if not refuse and op in ("Add", "Sub"):
        offset = Fraction(c) / levels.step * (1 if op == "Add" else -1)
        refuse = offset.denominator != 1
        shift = int(offset)
    if refuse:
        raise UnsupportedGraph.at(
            step.node,
            "after an activation quantizer and before the next layer, only a positive scalar "
            "Mul or Div, or an Add or Sub of a multiple of the quantizer's step, maps onto tnn/1 "
            "(anything else gives the next layer's inputs an offset or a per-channel scale)",
        )
    scalar = np.float32(c)
    values = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract}[op](
        levels.values, scalar
    ).astype(np.float32)
    if shift is not None:
        asm.levels = Levels(tuple(v + shift for v in levels.levels), levels.step, values)
    else:
        size = levels.step * Fraction(c) if op == "Mul" else levels.step / Fraction(c)
        asm.levels = levels.scaled(values, size)
    last = asm.plan.layers[-1] if asm.plan.layers else None
    if isinstance(last, Linear):
        last.nodes.append(step.name)
        last.out_levels = asm.levels
    elif last is None:
        asm.plan.input_levels = asm.levels
    else:
        raise UnsupportedGraph.at(step.node, "arithmetic after max pooling is not supported")


@handler(HANDLERS, "BatchNormalization")
def _batch_norm(asm, step):
    attrs = {a.name: a for a in step.node.attribute}
    if "training_mode" in attrs and attrs["training_mode"].i:
        raise UnsupportedGraph.at(step.node, "training_mode=1 is not supported")
    if step.data != 0 or len(step.in_shape) < 2:
        raise UnsupportedGraph.at(step.node, "its data must be its first input, (N, C, ...)")
    if asm.stage == "preamble":
        raise UnsupportedGraph.at(step.node, "batch norm before the input quantizer")
    _chain(asm, step, {k: s.value.astype(np.float32) for k, s in step.static.items()})


@handler(HANDLERS, "Relu", "Clip")
def _clamp(asm, step):
    consts = {}
    for k, static in step.static.items():
        if static.value.size != 1:
            raise UnsupportedGraph.at(step.node, "its bounds must be scalars")
        consts[k] = static.value.astype(np.float32).reshape(())
    _chain(asm, step, consts)


def _chain(asm, step, consts):
    if asm.stage == "quantized":
        raise UnsupportedGraph.at(
            step.node,
            "it follows an activation quantizer before the next layer; only a positive scalar "
            "Mul or Div may be there",
        )
    op = ChainOp(step.node, step.data, consts, len(step.in_shape), shape=step.in_shape[1:])
    if asm.stage == "preamble":
        asm.plan.preamble.append(op)
    else:
        asm.layer.chain.append(op)
        asm.layer.nodes.append(step.name)


# --- shape ops ----------------------------------------------------------------------------------


@handler(HANDLERS, *SHAPE_OPS)
def _shape(asm, step):
    if asm.stage == "linear" and asm.float and asm.spatial:
        asm.close_layer()
    if asm.stage == "linear":
        if asm.spatial and asm.shape[1] * asm.shape[2] > 1:
            raise UnsupportedGraph.at(
                step.node,
                "it reshapes a conv layer's output before the activation quantizer (thresholds "
                "are per channel; quantize first, then flatten)",
            )
        asm.layer.chain.append(ChainOp(step.node, 0, {}, len(step.out_shape), "reshape"))
        asm.layer.nodes.append(step.name)
    asm.reshape(step)


@handler(HANDLERS, "Identity", "Dropout")
def _identity(asm, step):
    if asm.layer is not None and asm.stage == "linear":
        asm.layer.nodes.append(step.name)
