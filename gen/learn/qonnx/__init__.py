"""Import of QONNX models (Brevitas, FINN, QKeras/HGQ exports) and post-training quantization of
float ONNX models into ``tnn/1`` descriptions.

The packages it needs (onnx, qonnx, onnxruntime) are the optional extra ``import``; without them
:func:`import_model` raises :class:`MissingExtra` naming it. See docs/import.md.
"""

from .errors import MissingExtra, UnsupportedGraph, require_extra

__all__ = ["MissingExtra", "UnsupportedGraph", "require_extra", "import_model", "quantize_model"]


def import_model(source, **options):
    """Import a QONNX model exactly: see :func:`.convert.import_model`."""
    require_extra()
    from .convert import import_model as run

    return run(source, **options)


def quantize_model(source, **options):
    """Ternarize or binarize a float ONNX model: see :func:`.ptq.quantize_model`."""
    require_extra()
    from .ptq import quantize_model as run

    return run(source, **options)
