"""Loading a QONNX model, cleaning it with qonnx's own transformations, and walking its chain.

:func:`prepare` turns a file (or a ``ModelProto``, or qonnx's ``ModelWrapper``) into a
:class:`Graph`: the model after ``qonnx.util.cleanup.cleanup_model`` (shape inference, constant
folding that keeps the quantizers, ``Transpose`` folded into weight quantizers, readable names),
and the plain walk from its input to its output as a list of :class:`Step`. Every tensor on the
walk has exactly one consumer and every node exactly one input that is not static; a static
tensor (an initializer, or the output of a node whose inputs are all static, such as the
``Quant`` of a weight) is evaluated once here with qonnx's own executor.

The older FINN dialect (nodes in the domain ``finn`` or ``finn.custom_op.general``) is read as
``qonnx.custom_op.general``, as qonnx's ``ModelWrapper`` reads it.
"""

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import UnsupportedGraph, display_name, mark_names, require_extra

__all__ = ["Static", "Step", "Graph", "load", "prepare", "QONNX_DOMAIN"]

QONNX_DOMAIN = "qonnx.custom_op.general"
_OLD_DOMAINS = ("finn", "finn.custom_op.general", "onnx.brevitas")
_STANDARD_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True, eq=False)
class Static:
    """A tensor known before any input: its value, the node that made it (None for an
    initializer) and that node's inputs."""

    name: str
    value: np.ndarray
    producer: object = None
    sources: tuple = ()


@dataclass(frozen=True, eq=False)
class Step:
    """One node of the chain: ``data`` is the index of its one dynamic input, ``static`` maps the
    indices of its other inputs to :class:`Static` tensors; shapes include the batch axis."""

    node: object
    data: int
    static: dict
    in_shape: tuple
    out_shape: tuple
    output: str

    @property
    def op_type(self):
        return self.node.op_type

    @property
    def name(self):
        """The node's name in the original file."""
        return display_name(self.node)


@dataclass(eq=False)
class Graph:
    """A cleaned model and its chain of steps from the input to the output."""

    model: object
    input_name: str
    input_shape: tuple
    output_name: str
    steps: list
    notes: list = field(default_factory=list)


def load(source):
    """A qonnx ``ModelWrapper`` of ``source``: a path, bytes, a ``ModelProto`` or a wrapper.

    Returns ``(model, notes)``; the notes say what was read in an older dialect.
    """
    require_extra()
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper

    if isinstance(source, ModelWrapper):
        proto = source.model
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise UnsupportedGraph(f"{path}: no such file")
        try:
            proto = onnx.load(path)
        except Exception as exc:  # onnx raises DecodeError and others: report them all alike
            raise UnsupportedGraph(f"{path}: not an ONNX model ({exc})") from None
    elif isinstance(source, bytes):
        proto = onnx.load_from_string(source)
    else:
        proto = source
    proto = onnx.ModelProto.FromString(proto.SerializeToString())  # never change the caller's
    mark_names(proto.graph)
    notes = []
    old = sorted({n.domain for n in proto.graph.node if n.domain in _OLD_DOMAINS})
    if old:
        notes.append(
            f"nodes of the older dialect ({', '.join(old)}) read as {QONNX_DOMAIN}, as qonnx does"
        )
        for node in proto.graph.node:
            if node.domain in _OLD_DOMAINS:
                node.domain = QONNX_DOMAIN
    return ModelWrapper(proto), notes


def prepare(source):
    """Load ``source``, clean it with qonnx's ``cleanup_model`` and walk it: a :class:`Graph`."""
    model, notes = load(source)
    from qonnx.util.cleanup import cleanup_model

    _fix_batch(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = cleanup_model(model)
    notes += [f"qonnx: {w.message}" for w in caught]
    for node in model.graph.node:
        if node.domain not in _STANDARD_DOMAINS + (QONNX_DOMAIN,):
            raise UnsupportedGraph.at(
                node,
                f"operators of the domain {node.domain!r} are not supported (only standard ONNX "
                f"and {QONNX_DOMAIN}; FINN's hardware layers are not an input of this importer)",
            )
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UnsupportedGraph(
            f"the graph must have exactly one input, not {len(inputs)} "
            f"({', '.join(i.name for i in inputs)})"
        )
    outputs = [o.name for o in model.graph.output]
    input_name = inputs[0].name
    steps, output_name = _walk(model, input_name, outputs)
    shape = tuple(model.get_tensor_shape(input_name))
    return Graph(model, input_name, shape, output_name, steps, notes)


def _fix_batch(model):
    """A symbolic batch axis (``N``) becomes 1: qonnx's shape inference and executor need
    numbers. The batch axis is never part of a description."""
    initializers = {t.name for t in model.graph.initializer}
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if value.name in initializers or not dims:
            continue
        if dims[0].dim_value <= 0:
            dims[0].dim_value = 1
    del model.graph.value_info[:]


# --- static tensors ------------------------------------------------------------------------------


class _Statics:
    """Values of the static tensors, each computed once with qonnx's executor."""

    def __init__(self, model):
        self.model = model
        self.values = {}
        self.producers = {}
        for node in model.graph.node:
            for out in node.output:
                self.producers[out] = node

    def is_static(self, name, seen=()):
        if name == "":
            return True
        if self.model.get_initializer(name) is not None:
            return True
        node = self.producers.get(name)
        if node is None or name in seen:
            return False
        return all(self.is_static(i, seen + (name,)) for i in node.input)

    def get(self, name):
        if name in self.values:
            return self.values[name]
        init = self.model.get_initializer(name)
        if init is not None:
            static = Static(name, np.asarray(init))
        else:
            node = self.producers[name]
            sources = tuple(self.get(i) for i in node.input if i)
            context = {s.name: s.value for s in sources}
            static = Static(name, self._execute(node, context)[name], node, sources)
        self.values[name] = static
        return static

    def _execute(self, node, context):
        from qonnx.core.onnx_exec import execute_node
        from qonnx.util.basic import get_preferred_qonnx_opset

        opsets = self.model.get_opset_imports()
        opset = opsets.get(node.domain, get_preferred_qonnx_opset())
        for out in node.output:
            shape = self.model.get_tensor_shape(out)
            context[out] = np.zeros(shape if shape is not None else (), dtype=np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            execute_node(node, context, self.model.graph, opset)
        return context


# --- the walk ------------------------------------------------------------------------------------


def _walk(model, input_name, outputs):
    statics = _Statics(model)
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    steps, visited = [], set()
    tensor, producer = input_name, None
    while True:
        users = consumers.get(tensor, [])
        if tensor in outputs:
            if users:
                raise _branch(producer, tensor, users, statics, also_output=True)
            break
        if not users:
            raise UnsupportedGraph(f"the tensor {tensor!r} reaches no node and no graph output")
        if len(users) > 1:
            raise _branch(producer, tensor, users, statics)
        node = users[0]
        dynamic = [k for k, name in enumerate(node.input) if not statics.is_static(name)]
        if len(dynamic) != 1:
            raise _join(node)
        data = dynamic[0]
        static = {
            k: statics.get(name) for k, name in enumerate(node.input) if k != data and name != ""
        }
        out = _next_output(node, consumers, outputs)
        steps.append(
            Step(
                node,
                data,
                static,
                tuple(model.get_tensor_shape(tensor) or ()),
                tuple(model.get_tensor_shape(out) or ()),
                out,
            )
        )
        visited.add(id(node))
        tensor, producer = out, node
    for node in model.graph.node:
        if id(node) not in visited and not all(statics.is_static(i) for i in node.input):
            raise UnsupportedGraph.at(node, "it is not on the chain from the input to the output")
    return steps, tensor


def _next_output(node, consumers, outputs):
    """The output of ``node`` the chain continues with; its other outputs must be unused."""
    main = 1 if node.op_type == "TopK" else 0
    for k, name in enumerate(node.output):
        if k == main or name == "":
            continue
        used = consumers.get(name) or (name in outputs and node.op_type != "TopK")
        if used:
            raise UnsupportedGraph.at(
                node, f"its output {k} ({name!r}) is used; only output {main} is supported"
            )
    return node.output[main]


def _join(node):
    what = "a residual Add of two activations" if node.op_type == "Add" else "a join of branches"
    return UnsupportedGraph.at(
        node, f"{what} does not map onto tnn/1 (only a plain chain of layers does)"
    )


def _branch(producer, tensor, users, statics, also_output=False):
    for user in users:
        if sum(not statics.is_static(name) for name in user.input) > 1:
            return _join(user)
    names = ", ".join(repr(display_name(u)) for u in users)
    what = f"feeds {len(users)} nodes ({names})"
    if also_output:
        what = f"is a graph output and also feeds {names}"
    reason = f"its output {tensor!r} {what}: branches and residual connections are not supported"
    if producer is None:
        return UnsupportedGraph(f"the graph input {reason[len('its output ') :]}")
    return UnsupportedGraph.at(producer, reason)
