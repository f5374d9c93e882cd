"""Reading an accelerator folder back, checked field by field, for synthesis (:mod:`gen.flow`) and
simulation (:mod:`sim`) (docs/accelerator.md)."""

import glob
import os
from dataclasses import dataclass

import numpy as np

from .. import jsontext
from ..payload import Encoding

__all__ = [
    "FORMAT",
    "VECTORS",
    "OUTPUT_KINDS",
    "FolderError",
    "Vectors",
    "AcceleratorFolder",
    "find_metadata",
    "load",
]

#: The metadata's format tag.
FORMAT = "tnngen-accelerator/1"
#: The test vectors' file name.
VECTORS = "vectors.npz"
#: What one result on the output stream is (docs/accelerator.md).
OUTPUT_KINDS = ("argmax", "values", "class_map")


class FolderError(ValueError):
    """An accelerator folder that does not honour the contract; the message names the file."""


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vectors:
    """Test vectors of an accelerator (``vectors.npz``), and their payloads.

    Members
    -------
    inputs : numpy.ndarray
        ``(N, *input.shape)`` input values.
    outputs : numpy.ndarray
        The golden model's results: ``(N,)`` class indices for ``argmax``, else
        ``(N, *output.shape)``.
    source : str
        Where the inputs came from (a data set and split, or ``random:SEED``).
    input_payloads, output_payloads : list of int
        The packed ``i`` payload of each input and the expected ``o`` payload of each result.
    """

    inputs: np.ndarray
    outputs: np.ndarray
    source: str
    input_payloads: list
    output_payloads: list

    def __len__(self):
        return len(self.inputs)


@dataclass(frozen=True)
class AcceleratorFolder:
    """A generated accelerator's folder, as its metadata describes it (:func:`load`).

    Members
    -------
    directory : str
        The folder.
    metadata_path : str
        The metadata JSON.
    metadata : dict
        Its contents.
    name, top : str
        The description's name and the Verilog top module.
    verilog_path : str
        Path of the Verilog file.
    clock : str
        Clock port.
    reset : str
        Reset port; ``reset_active`` is its active level (1 or 0).
    ports : dict
        ``{"i": {...}, "o": {...}}``, each with ``payload``, ``valid``, ``ready`` port names.
    input, output : Encoding
        Payload encodings of the ``i`` and ``o`` streams.
    input_shape, output_shape : tuple of int
        Shapes of one input vector and one result (``()`` for ``argmax``, ``(h, w)`` for
        ``class_map``).
    output_kind : str
        ``"argmax"``, ``"values"`` or ``"class_map"``.
    latency, initiation_interval : int
        The predicted figures, in cycles.
    """

    directory: str
    metadata_path: str
    metadata: dict
    name: str
    top: str
    verilog_path: str
    clock: str
    reset: str
    reset_active: int
    ports: dict
    input: Encoding
    output: Encoding
    input_shape: tuple
    output_shape: tuple
    output_kind: str
    latency: int
    initiation_interval: int

    @property
    def vectors_path(self):
        """Path of ``vectors.npz``."""
        return os.path.join(self.directory, VECTORS)

    def load_vectors(self, count=None):
        """Read the first ``count`` vectors (all when ``None``) and pack their payloads.

        Raises
        ------
        FolderError
            If ``vectors.npz`` is missing or malformed, holds fewer than ``count`` vectors, or
            holds a value the port encodings cannot carry.
        """
        path = self.vectors_path
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except FileNotFoundError:
            raise FolderError(f"{path}: no such file (the test vectors)") from None
        except (OSError, ValueError) as exc:
            raise FolderError(f"{path}: not a NumPy .npz archive: {exc}") from None
        for key in ("inputs", "outputs"):
            if key not in arrays:
                raise FolderError(f"{path}: no array {key!r}")
            if not np.issubdtype(arrays[key].dtype, np.integer):
                raise FolderError(f"{path}: {key!r} must hold integers, not {arrays[key].dtype}")
        inputs, outputs = arrays["inputs"], arrays["outputs"]
        source = str(arrays["source"]) if "source" in arrays else "unknown"
        if inputs.shape[1:] != self.input_shape:
            raise FolderError(
                f"{path}: 'inputs' has shape {inputs.shape}, expected (N, "
                f"{', '.join(map(str, self.input_shape))}) for input.shape {list(self.input_shape)}"
            )
        if outputs.shape != (len(inputs),) + self.output_shape:
            raise FolderError(
                f"{path}: 'outputs' has shape {outputs.shape}, expected "
                f"{(len(inputs),) + self.output_shape} ({len(inputs)} inputs, output.shape "
                f"{list(self.output_shape)})"
            )
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise FolderError(f"Vector count must be a positive integer, not {count!r}")
            if count > len(inputs):
                raise FolderError(
                    f"{path}: holds {len(inputs)} vectors, fewer than the {count} asked for"
                )
            inputs, outputs = inputs[:count], outputs[:count]
        if len(inputs) == 0:
            raise FolderError(f"{path}: holds no vectors")
        n = len(inputs)
        try:
            input_payloads = self.input.pack(inputs.reshape(n, -1))
        except ValueError as exc:
            raise FolderError(f"{path}: 'inputs': {exc}") from None
        try:
            output_payloads = self.output.pack(outputs.reshape(n, -1))
        except ValueError as exc:
            raise FolderError(f"{path}: 'outputs': {exc}") from None
        return Vectors(inputs, outputs, source, input_payloads, output_payloads)

    def format_result(self, values):
        """A result's values as text: the class index for ``argmax``, else the value list."""
        values = np.asarray(values).reshape(-1)
        if self.output_kind == "argmax":
            return str(int(values[0]))
        return "[" + " ".join(str(int(v)) for v in values) + "]"


def find_metadata(path):
    """The metadata JSON of the accelerator at ``path``: a folder holding one ``*.json`` whose
    format is the contract's, or that file itself.

    Synthesis and sweep reports (``synth-*.json``, ``sweep-*.json``) are not candidates.

    Raises
    ------
    FolderError
        If ``path`` does not exist, or is a folder holding no metadata file or more than one.
    """
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise FolderError(f"{path}: no such file or folder")
    found, unreadable = [], []
    for candidate in sorted(glob.glob(os.path.join(path, "*.json"))):
        if os.path.basename(candidate).startswith(("synth-", "sweep-")):
            continue
        try:
            with open(candidate, encoding="utf-8") as f:
                doc = jsontext.loads(f.read())
        except (OSError, ValueError) as exc:
            unreadable.append((candidate, exc))
            continue
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            found.append(candidate)
    if not found and len(unreadable) == 1:
        candidate, exc = unreadable[0]
        reason = exc.strerror if isinstance(exc, OSError) else f"not JSON: {exc}"
        raise FolderError(
            f"{candidate}: {reason} (the folder's only candidate for accelerator metadata)"
        )
    if not found:
        names = ", ".join(os.path.basename(c) for c, _ in unreadable)
        hint = f" ({names}: not JSON)" if unreadable else ""
        raise FolderError(
            f"{path}: no accelerator metadata (a *.json file with format {FORMAT!r}){hint}; "
            f"make one with 'tnngen verilog MODEL -o {path}'"
        )
    if len(found) > 1:
        names = ", ".join(os.path.basename(p) for p in found)
        raise FolderError(
            f"{path}: more than one accelerator metadata file ({names}); name the file"
        )
    return found[0]


class _Fields:
    """Typed access to the fields of a metadata document, with errors naming file and field."""

    def __init__(self, path, doc):
        self.path, self.doc = path, doc

    def get(self, dotted, kind, *, default=None, required=True):
        node = self.doc
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                if not required:
                    return default
                raise FolderError(f"{self.path}: missing field {dotted!r}")
            node = node[part]
        if kind is int:
            ok = isinstance(node, int) and not isinstance(node, bool)
        elif kind is list:
            ok = isinstance(node, list) and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in node
            )
        else:
            ok = isinstance(node, kind)
        if not ok:
            what = {
                int: "an integer",
                str: "a string",
                dict: "an object",
                bool: "a boolean",
                list: "a list of positive integers",
            }[kind]
            raise FolderError(f"{self.path}: field {dotted!r} must be {what}, not {node!r}")
        return node

    def fail(self, dotted, message):
        raise FolderError(f"{self.path}: field {dotted!r}: {message}")


def _encoding(fields, side):
    kind = fields.get(f"{side}.encoding", str)
    width = fields.get(f"{side}.element_width", int)
    count = fields.get(f"{side}.count", int)
    try:
        encoding = Encoding(kind, width, count)
    except ValueError as exc:
        fields.fail(side, str(exc))
    port_width = fields.get(f"ports.{side[0]}.width", int)
    if port_width != encoding.payload_width:
        fields.fail(
            f"ports.{side[0]}.width",
            f"{port_width} bits, but {side}.count * {side}.element_width = "
            f"{count} * {width} = {encoding.payload_width}",
        )
    return encoding


def load(path):
    """Read and check the accelerator at ``path`` (its folder, or its metadata file).

    Returns
    -------
    AcceleratorFolder

    Raises
    ------
    FolderError
        If the folder, its metadata or its Verilog file does not honour ``docs/accelerator.md``;
        the message names the file and the field.
    """
    path = find_metadata(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = jsontext.loads(f.read())
    except OSError as exc:
        raise FolderError(f"{path}: cannot be read: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FolderError(f"{path}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FolderError(f"{path}: not accelerator metadata (format {FORMAT!r})")
    directory = os.path.dirname(os.path.abspath(path))
    fields = _Fields(path, doc)
    name = fields.get("name", str)
    top = fields.get("top", str)
    if not top.replace("_", "a").isalnum():
        fields.fail("top", f"must be a plain Verilog name, not {top!r}")
    verilog = os.path.join(directory, fields.get("verilog", str))
    if not os.path.isfile(verilog):
        fields.fail("verilog", f"{verilog}: no such file")
    if not isinstance(doc.get("layers", []), list):
        fields.fail("layers", "must be a list")
    ports = {}
    for side in ("i", "o"):
        ports[side] = {
            role: fields.get(f"ports.{side}.{role}", str) for role in ("payload", "valid", "ready")
        }
    reset_active = fields.get("reset.active", str, default="high", required=False)
    if reset_active not in ("high", "low"):
        fields.fail("reset.active", f"must be 'high' or 'low', not {reset_active!r}")
    if fields.get("reset.synchronous", bool, default=True, required=False) is not True:
        fields.fail("reset.synchronous", "the bench drives a synchronous reset only")
    input_encoding = _encoding(fields, "input")
    output_encoding = _encoding(fields, "output")
    input_shape = tuple(fields.get("input.shape", list))
    if int(np.prod(input_shape)) != input_encoding.count:
        fields.fail("input.count", f"{input_encoding.count} for input.shape {list(input_shape)}")
    output_kind = fields.get("output.kind", str)
    if output_kind not in OUTPUT_KINDS:
        fields.fail(
            "output.kind", f"must be 'argmax', 'values' or 'class_map', not {output_kind!r}"
        )
    output_shape = tuple(fields.get("output.shape", list)) if output_kind != "argmax" else ()
    if output_kind == "argmax":
        if doc["output"].get("shape", []) != []:
            fields.fail("output.shape", "must be [] for an argmax output")
        if output_encoding.count != 1 or output_encoding.kind != "uint":
            fields.fail("output", "an argmax output is one uint element, the class index")
    elif output_kind == "class_map" and (len(output_shape) != 2 or output_encoding.kind != "uint"):
        fields.fail("output", "a class_map output is [h, w] uint elements, the class indices")
    if output_kind != "argmax" and int(np.prod(output_shape)) != output_encoding.count:
        fields.fail("output.count", f"{output_encoding.count} for output.shape {output_shape}")
    latency = fields.get("latency", int)
    if latency < 0:
        fields.fail("latency", f"must not be negative, not {latency}")
    initiation_interval = fields.get("initiation_interval", int)
    if initiation_interval < 1:
        fields.fail("initiation_interval", f"must be at least 1, not {initiation_interval}")
    return AcceleratorFolder(
        directory=directory,
        metadata_path=path,
        metadata=doc,
        name=name,
        top=top,
        verilog_path=verilog,
        clock=fields.get("clock", str),
        reset=fields.get("reset.name", str),
        reset_active=1 if reset_active == "high" else 0,
        ports=ports,
        input=input_encoding,
        output=output_encoding,
        input_shape=input_shape,
        output_shape=output_shape,
        output_kind=output_kind,
        latency=latency,
        initiation_interval=initiation_interval,
    )
