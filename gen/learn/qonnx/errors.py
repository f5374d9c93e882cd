"""The importer's errors: a refusal naming the node, and the missing optional extra."""

import importlib

__all__ = [
    "UnsupportedGraph",
    "MissingExtra",
    "EXTRA",
    "require_extra",
    "mark_names",
    "display_name",
]

EXTRA = "import"


class UnsupportedGraph(ValueError):
    """A graph, or one node of it, that does not map exactly onto ``tnn/1``.

    Attributes
    ----------
    node : str or None
        The name of the node refused (None for the graph as a whole).
    op_type : str or None
        Its operator type.
    reason : str
        Why it is refused, and where possible what to do instead.
    """

    def __init__(self, reason, *, node=None, op_type=None):
        self.node = node
        self.op_type = op_type
        self.reason = reason
        super().__init__(self._message())

    def _message(self):
        if self.node is None:
            return self.reason
        return f"node {self.node!r} ({self.op_type}): {self.reason}"

    @classmethod
    def at(cls, node, reason):
        """The refusal of the ONNX node ``node`` (named as in the file it came from)."""
        return cls(reason, node=display_name(node), op_type=node.op_type)


_MARK = "tnngen-original-name:"


def mark_names(graph):
    """Remember each node's name in its ``doc_string`` (which cleanup keeps, while it renames
    the nodes), so that messages and reports can use the names of the user's file."""
    for node in graph.node:
        node.doc_string = _MARK + node.name if node.name else ""


def display_name(node):
    """The node's name in the original file, or its name after cleanup where it had none."""
    if node.doc_string.startswith(_MARK):
        return node.doc_string[len(_MARK) :]
    return node.name or "(unnamed)"


class MissingExtra(RuntimeError):
    """The packages of the optional extra ``import`` (onnx, qonnx, onnxruntime) are missing."""


def require_extra():
    """Import onnx, qonnx and onnxruntime, or raise :class:`MissingExtra` in one line."""
    for module in ("onnx", "onnxruntime", "qonnx"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtra(
                f"importing ONNX models needs the optional extra '{EXTRA}' ({module} is "
                f"missing): pip install 'tnngen[{EXTRA}]'"
            ) from None
