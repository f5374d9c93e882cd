"""Folding specs: which engine and ``PE x SIMD`` folding each layer of a network asks for.

A spec is what ``tnngen verilog --fold`` takes (see :func:`parse_fold`); the planner
(:mod:`gen.compiler.plan`) turns it into engines.
"""

from ..network import MaxPool
from ..network.description import shown as _shown

__all__ = ["CompileError", "parse_fold", "divisors"]


class CompileError(ValueError):
    """Options that do not fit the network (a folding that does not divide, an unmet target)."""


def divisors(n):
    """The divisors of ``n``, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def parse_fold(spec, net):
    """Per-layer folding from a spec: a dict ``{layer index: "unrolled" | "auto" | (pe, simd)}``.

    ``spec`` is one of: ``"unrolled"``; ``"auto"``; ``"PE,SIMD"`` (every dense and conv2d
    layer); ``"L:PE,SIMD;L:unrolled;..."`` (per layer, the rest ``auto``); a dict or list of
    the same per layer (as read from a JSON file: ``{"0": [16, 49], "2": "unrolled"}``).
    Raises :class:`CompileError` naming the layer for anything that does not fit.
    """
    weighted = [k for k, layer in enumerate(net.layers) if not isinstance(layer, MaxPool)]
    if isinstance(spec, str):
        text = spec.strip()
        if text in ("unrolled", "auto"):
            return {k: text for k in weighted}
        if ":" not in text:
            return {k: _fold_item(text, net, k) for k in weighted}
        folds = {k: "auto" for k in weighted}
        given = set()
        for part in filter(None, (p.strip() for p in text.split(";"))):
            index_text, _, item = part.partition(":")
            index = _layer_index(index_text, net, weighted)
            if index in given:
                raise CompileError(f"fold: layer {index} is given twice in {_shown(spec)}")
            given.add(index)
            folds[index] = _fold_item(item, net, index)
        return folds
    if isinstance(spec, list):
        spec = {str(k): v for k, v in enumerate(spec) if v is not None}
    if isinstance(spec, dict):
        folds = {k: "auto" for k in weighted}
        given = set()
        for index_text, item in spec.items():
            index = _layer_index(str(index_text), net, weighted)
            if index in given:  # "0" and "00" in a JSON object
                raise CompileError(f"fold: layer {index} is given twice")
            given.add(index)
            folds[index] = _fold_item(item, net, index)
        return folds
    raise CompileError(
        f"fold: expected 'unrolled', 'auto', 'PE,SIMD' or a per-layer spec, not {_shown(spec)}"
    )


def _layer_index(text, net, weighted):
    try:
        index = int(text)
    except ValueError:
        raise CompileError(f"fold: {_shown(text)} is not a layer index") from None
    if index not in weighted:
        raise CompileError(
            f"fold: layer {index} is not a dense or conv2d layer of this network (those are "
            f"{', '.join(map(str, weighted))})"
        )
    return index


def _fold_item(item, net, index):
    if item in ("unrolled", "auto"):
        return item
    if isinstance(item, str):
        parts = item.split(",")
        try:
            item = [int(p) for p in parts]
        except ValueError:
            raise CompileError(
                f"fold: layer {index}: expected 'unrolled', 'auto' or 'PE,SIMD', not {_shown(item)}"
            ) from None
    if not (
        isinstance(item, (list, tuple))
        and len(item) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in item)
    ):
        raise CompileError(
            f"fold: layer {index}: expected 'unrolled', 'auto' or [PE, SIMD], not {_shown(item)}"
        )
    pe, simd = item
    layer = net.layers[index]
    rows, cols = layer.weights.shape
    if pe < 1 or rows % pe:
        raise CompileError(
            f"fold: layer {index} ({layer.type}): PE {pe} must divide its "
            f"{rows} output rows (divisors: {_short(divisors(rows))})"
        )
    if simd < 1 or cols % simd:
        raise CompileError(
            f"fold: layer {index} ({layer.type}): SIMD {simd} must divide its "
            f"fan-in of {cols} (divisors: {_short(divisors(cols))})"
        )
    return (pe, simd)


def _short(values):
    return (
        ", ".join(map(str, values))
        if len(values) <= 12
        else (", ".join(map(str, values[:6])) + ", ..., " + ", ".join(map(str, values[-3:])))
    )
