"""Converting an assembled QONNX graph into a ``tnn/1`` network and its input specification.

:func:`import_model` is the importer: it loads and cleans the graph (:mod:`.graph`), assembles
its layers (:mod:`.patterns`), folds each hidden layer's chain and quantizer into integer
thresholds (:mod:`.thresholds`), chooses the output, and returns an :class:`ImportResult`: the
validated :class:`gen.network.Network`, the input specification (:mod:`.inputspec`) and a report
of what became what.
"""

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ... import network
from ..fold import accumulator_range
from . import inputspec
from .errors import UnsupportedGraph, display_name
from .graph import prepare
from .ir import Linear, Pool
from .patterns import assemble
from .quantizers import Levels
from .thresholds import ChainEvaluator, error_bounds, final_analysis, fold_layer

__all__ = ["ImportResult", "Folder", "import_model", "levels_of_type", "input_spec", "layer_doc"]


@dataclass(eq=False)
class ImportResult:
    """What :func:`import_model` made.

    Attributes
    ----------
    network : gen.network.Network
    input_spec : dict
        The ``tnn-input/1`` document (see :mod:`.inputspec`).
    report : list of str
        One line per layer and per decision, as ``tnngen import`` prints them.
    exact : bool
        True when the description provably agrees with the graph's float32 evaluation on every
        input (no threshold or final comparison within the float32 rounding of a sum).
    warnings : list of str
    levels : list of Levels or None
        ``levels[0]`` the input's, ``levels[i + 1]`` the outputs' of description layer ``i``
        (the float32 values the quantizer node outputs; None for a final layer without one).
    final_unit : (ndarray, ndarray or None)
        The final layer's ``g * s_j`` and bias ``c_j``: the graph's last linear op computes
        ``final_sign * acc * g * s_j + c_j`` from the description's final accumulators.
    final_sign : int
        -1 when the final rows were negated (argmax of a falling affine), else +1.
    final_bound : ndarray
        How far, per output, the graph's float32 linear op can be from that (0: exact).
    accuracy : dict or None
        Post-training quantization only: float and quantized accuracy on a test split.
    uncertain : list
        Per description layer, None or a boolean array (out, m) of the thresholds not proved
        (see :class:`.thresholds.Fold`).
    """

    network: object
    input_spec: dict
    report: list = field(default_factory=list)
    exact: bool = True
    warnings: list = field(default_factory=list)
    levels: list = field(default_factory=list)
    final_unit: tuple = None
    final_sign: int = 1
    final_bound: np.ndarray = None
    accuracy: dict = None
    uncertain: list = field(default_factory=list)


def levels_of_type(name):
    """:class:`.quantizers.Levels` of a declared ``tnn/1`` input type (``--input-type``)."""
    value_type = network.ValueType.parse(name, where="--input-type")
    levels = tuple(value_type.enumerate())
    return Levels(levels, Fraction(1), np.asarray(levels, dtype=np.float32))


def _input_type(levels, node):
    values = levels.levels
    if values == (-1, 1):
        return "binary"
    if values == (-1, 0, 1):
        return "ternary"
    lo, hi = min(values), max(values)
    for bits in range(1, 17):
        if lo >= 0 and hi < (1 << bits):
            return f"uint{bits}"
        if lo >= -(1 << (bits - 1)) and hi < (1 << (bits - 1)):
            return f"int{bits}"
    raise UnsupportedGraph.at(node, f"its levels {lo}..{hi} need more than 16 bits")


def import_model(source, *, input_type=None, output=None, name=None, strict=False):
    """Import the QONNX model ``source`` (a path, bytes, ``ModelProto`` or ``ModelWrapper``).

    Parameters
    ----------
    input_type : str, optional
        The ``tnn/1`` input type, for a graph without an input quantizer.
    output : {"argmax", "values"}, optional
        Default: ``argmax`` when the graph ends in ``TopK``/``ArgMax`` or its final affine is
        uniform, positive and strictly increasing; else ``values``.
    name : str, optional
        The description's name (default: the graph's name, or ``imported``).
    strict : bool
        Refuse (rather than report) a result that is not provably exact on every input.

    Raises
    ------
    UnsupportedGraph
        For anything that does not map exactly, naming the node, its op type and why.
    """
    if output not in (None, "argmax", "values"):
        raise ValueError(f"output must be 'argmax' or 'values', not {output!r}")
    graph = prepare(source)
    declared = levels_of_type(input_type) if input_type else None
    plan = assemble(graph, input_levels=declared)
    first_node = plan.input_quantizer.node if plan.input_quantizer else graph.model.graph.node[0]
    in_type = input_type or _input_type(plan.input_levels, first_node)
    folder = Folder(plan, graph, in_type, output)
    for layer in plan.layers:
        folder.add(layer)
    result = folder.finish(name)
    if strict and not result.exact:
        raise UnsupportedGraph("not provably exact on every input: " + "; ".join(result.warnings))
    return result


class Folder:
    """Folds a :class:`~.ir.Plan` into ``tnn/1`` one layer at a time (:meth:`add`), so that
    post-training quantization can run the description built so far before it chooses the next
    layer's quantizer; :meth:`finish` validates the whole and returns the
    :class:`ImportResult`."""

    def __init__(self, plan, graph, in_type, output, *, quantizer_spec=None, certify=True):
        self.plan, self.graph, self.in_type, self.output = plan, graph, in_type, output
        self.opset = graph.model.get_opset_imports().get("", 13)
        self.result = ImportResult(None, None)
        self.docs = []
        self.chosen = output
        self.lo, self.hi = min(plan.input_levels.levels), max(plan.input_levels.levels)
        q = plan.input_quantizer
        self.quantizer_spec = quantizer_spec
        self.certify = certify
        self.result.levels.append(q.levels if q is not None else plan.input_levels)
        how = q.describe() if q is not None else (quantizer_spec or {}).get("describe")
        self.result.report.append(
            f"input   {list(plan.graph_input_shape[1:])} float -> {list(plan.input_shape)} "
            f"{in_type}" + (f" by {how}" if how else "")
        )

    @property
    def last(self):
        return [layer for layer in self.plan.layers if isinstance(layer, Linear)][-1]

    def doc(self, name):
        """The ``tnn/1`` document of the layers added so far (``tnn/2`` with ``intN`` weights)."""
        wide = any(d.get("weight_type", "").startswith("int") for d in self.docs)
        return {
            "format": network.FORMAT_2 if wide else network.FORMAT,
            "name": name or _name(self.graph),
            "input": {"shape": list(self.plan.input_shape), "type": self.in_type},
            "layers": list(self.docs),
            "output": self.chosen or ("values" if self.plan.tail is None else "argmax"),
        }

    def evaluator(self, layer):
        return ChainEvaluator(layer, self.opset)

    def accumulator_range(self, layer):
        return accumulator_range(layer.weights, self.lo, self.hi)

    def add(self, layer):
        result, index = self.result, len(self.docs)
        if isinstance(layer, Pool):
            result.levels.append(result.levels[-1])
            result.uncertain.append(None)
            self.docs.append(
                {"type": "maxpool", "kernel": list(layer.kernel), "stride": list(layer.stride)}
            )
            name = display_name(layer.node)
            result.report.append(
                f"layer {index}: maxpool {layer.kernel} / {layer.stride} from {name}"
            )
            return
        evaluator = self.evaluator(layer)
        acc_lo, acc_hi = self.accumulator_range(layer)
        weights, activation = layer.weights, None
        text = (
            f"layer {index}: {layer.kind} {layer.weights.shape[1]}->{layer.out} "
            f"{layer.weight_type} ({layer.weight_source}) from {', '.join(layer.nodes)}"
        )
        unit = float(layer.inputs.step) * layer.weight_scale.astype(np.float64)
        text += f"; folded scale {unit.min():.6g}..{unit.max():.6g}"
        if layer.quantizer is not None:
            fold = fold_layer(layer, evaluator, acc_lo, acc_hi, certify=self.certify)
            weights = (layer.weights * fold.sign[:, None]).astype(np.int16)
            levels = list(layer.out_levels.levels)
            activation = {"levels": levels, "thresholds": fold.thresholds.tolist()}
            text += (
                f"; {layer.quantizer.describe()} -> levels {levels}, thresholds "
                f"{int(fold.thresholds.min())}..{int(fold.thresholds.max())}, "
                f"{int(np.sum(fold.sign < 0))} rows negated"
            )
            text += "; " + _exactness(fold.bounds, fold.fragile, result, self.certify)
            result.uncertain.append(fold.uncertain if fold.fragile else None)
            self.lo, self.hi = min(levels), max(levels)
            result.levels.append(layer.quantizer.levels)
        elif layer is self.last:
            self.chosen, weights = _final(
                layer, evaluator, acc_lo, acc_hi, self.plan, self.output, result, self.certify
            )
            text += f"; output {self.chosen}"
            result.levels.append(None)
            result.uncertain.append(None)
            result.final_unit = (unit, None if layer.bias is None else layer.bias.astype(float))
            result.final_bound = error_bounds(layer)
        else:
            raise UnsupportedGraph.at(layer.node, "a hidden layer without activation quantizer")
        self.docs.append(layer_doc(layer, weights, activation))
        result.report.append(text)

    def finish(self, name):
        result, plan = self.result, self.plan
        doc = self.doc(name)
        try:
            result.network = network.from_dict(doc)
        except network.DescriptionError as exc:
            raise UnsupportedGraph(f"the imported description is not valid: {exc}") from None
        result.input_spec = input_spec(plan, self.graph, self.in_type, self.quantizer_spec)
        result.report.extend(f"note: {n}" for n in plan.notes)
        tail = "" if plan.tail is None else f" ({plan.tail.op_type})"
        result.report.append(f"output  {doc['output']}{tail}")
        return result


def _type_holding(layer, weights):
    """The layer's weight type, one bit wider for ``intN`` rows that were negated (a row of a
    negative scale folded into the thresholds) and hold -2**(N-1), whose negation needs it."""
    weight_type = layer.weight_type
    if not weight_type.startswith("int"):
        return weight_type
    bits = int(weight_type[3:])
    if int(weights.max(initial=0)) < (1 << (bits - 1)):
        return weight_type
    if bits == 8:
        raise UnsupportedGraph.at(
            layer.node,
            "a row of int8 weights holding -128 is negated (its scale is negative), and +128 "
            "needs 9 bits; tnn/2 weights have at most 8",
        )
    return f"int{bits + 1}"


def layer_doc(layer, weights, activation):
    """The ``tnn/1`` document of one weighted layer."""
    doc = {"type": layer.kind, "out": layer.out}
    if layer.kind == "conv2d":
        doc.update(kernel=list(layer.kernel), stride=list(layer.stride))
        doc["padding"] = list(layer.padding)
    weight_type = _type_holding(layer, weights)
    if weight_type != "ternary":
        doc["weight_type"] = weight_type
    doc["weights"] = network.weight_rows(weights, weight_type)
    doc["activation"] = activation
    return doc


def _exactness(bounds, fragile, result, certify=True):
    if not certify:
        return "the calibrated model, exactly"
    if not np.any(bounds > 0):
        return "exact (every product and sum is a float32 number)"
    if fragile == 0:
        return f"exact (float32 sums within {bounds.max():.3g} of ideal decide no threshold)"
    result.exact = False
    warning = (
        f"{fragile} thresholds lie within float32 rounding ({bounds.max():.3g}) of a reachable "
        "sum: there the graph's own result depends on its summation order; the description "
        "decides them as exact arithmetic does"
    )
    result.warnings.append(warning)
    return "WARNING " + warning


def _final(layer, evaluator, acc_lo, acc_hi, plan, output, result, certify=True):
    """The output kind and the final weights (negated when argmax of a falling affine)."""
    weights = layer.weights
    if output == "values":
        return "values", weights
    info = final_analysis(layer, evaluator, acc_lo, acc_hi)
    wanted = output == "argmax" or plan.tail is not None
    ok = info.uniform and info.strict and info.direction != 0
    if not wanted and not (ok and info.direction > 0):
        return "values", weights
    if not ok:
        raise UnsupportedGraph.at(
            layer.node,
            "the final layer's affine is per channel or not strictly monotone ("
            + info.reason
            + "): argmax of A_j*acc+B_j with unequal A_j or nonzero B_j is not an argmax of the "
            "accumulators; use --output values",
        )
    if info.direction < 0:
        weights = (-weights).astype(np.int16)
        result.final_sign = -1
        result.report.append("note: the final affine falls: its rows are negated for argmax")
    if certify and np.any(error_bounds(layer) > 0):
        result.exact = False
        result.warnings.append(
            "the final layer's float32 sums round: where two classes have equal accumulators, "
            "the graph's argmax depends on that rounding (the description takes the lowest index)"
        )
    return "argmax", weights


def _name(graph):
    raw = graph.model.graph.name or "imported"
    clean = "".join(c if c.isalnum() or c in "-_." else "-" for c in raw).strip("-.")
    return clean[:128] or "imported"


def input_spec(plan, graph, in_type, quantizer_spec=None):
    """The input specification (:mod:`.inputspec`) of an assembled plan."""
    preamble = []
    for op in plan.preamble:
        entry = {"op": op.node.op_type, "shape": list(op.shape)}
        if op.node.op_type == "Clip":
            entry["min"] = float(op.consts[1]) if 1 in op.consts else None
            entry["max"] = float(op.consts[2]) if 2 in op.consts else None
        elif op.node.op_type != "Relu":
            ((_, const),) = op.consts.items()
            flat = np.asarray(const, dtype=np.float32).reshape(-1)
            entry["constant"] = [float(flat[0])] if np.all(flat == flat[0]) else flat.tolist()
            entry["data_first"] = op.data == 0
        preamble.append(entry)
    q = plan.input_quantizer
    quantizer = None if quantizer_spec is None else quantizer_spec["params"]
    own = None if quantizer_spec is None else list(plan.input_levels.levels)
    if q is not None:
        quantizer = dict(q.params)
        quantizer.pop("thresholds_count", None)
        if q.kind == "MultiThreshold":
            count = np.arange(len(q.params["thresholds"][0]) + 1, dtype=np.float32)
            values = q.params["out_scale"] * count + q.params["out_bias"]  # as qonnx computes
            quantizer["count_levels"] = [
                int(Fraction(float(v)) / q.levels.step) for v in values.tolist()
            ]
    return {
        "format": inputspec.FORMAT,
        "graph_input": {"name": graph.input_name, "shape": list(plan.graph_input_shape)},
        "preamble": preamble,
        "quantizer": quantizer,
        "levels": list(plan.input_levels.levels),
        "quantizer_levels": list(q.levels.levels) if q is not None else own,
        "step": float(plan.input_levels.step),
        "type": in_type,
        "layout": plan.input_layout,
        "input_shape": list(plan.input_shape),
    }
