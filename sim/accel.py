"""A generated accelerator on disk: its metadata, its test vectors and its payload encodings.

This module reads the files ``tnngen verilog`` writes (``docs/accelerator.md``): the metadata
JSON, which names the top module, the ports and their widths, the value encodings, the latency
and the initiation interval, and ``vectors.npz``, the golden model's results for a set of
inputs. Everything is checked on load, with a message naming the file and the field, so that a
bench never runs on a half-understood accelerator. NumPy only; no simulator is needed here.
"""

import glob
import json
import os
from dataclasses import dataclass

import numpy as np

__all__ = [
    "METADATA_FORMAT",
    "AcceleratorError",
    "Encoding",
    "Accelerator",
    "Vectors",
    "load",
    "find_metadata",
]

METADATA_FORMAT = "tnngen-accelerator/1"

_KINDS = ("ternary", "binary", "uint", "int")
_CHUNK = 1024  # vectors packed or unpacked per NumPy batch, to bound memory


class AcceleratorError(ValueError):
    """An accelerator folder that does not honour the contract; the message names the file."""


@dataclass(frozen=True)
class Encoding:
    """How the elements of one stream payload are carried (``docs/accelerator.md``).

    Element ``k`` occupies bits ``[k*width, (k+1)*width)``. Ternary values are 2-bit two's
    complement (-1 = ``0b11``, 0 = ``0b00``, +1 = ``0b01``), binary values one bit (1 = +1,
    0 = -1), ``uint`` and ``int`` values themselves (``int`` in two's complement).

    Parameters
    ----------
    kind : str
        ``"ternary"``, ``"binary"``, ``"uint"`` or ``"int"``.
    width : int
        Bits per element.
    count : int
        Elements in one payload.
    """

    kind: str
    width: int
    count: int

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"Encoding must be one of {', '.join(_KINDS)}, not {self.kind!r}")
        for field in ("width", "count"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Encoding {field} must be a positive integer, not {value!r}")
        fixed = {"ternary": 2, "binary": 1}.get(self.kind)
        if fixed is not None and self.width != fixed:
            raise ValueError(f"A {self.kind} element is {fixed} bits wide, not {self.width}")
        if self.kind == "int" and self.width < 2:
            raise ValueError(f"An int element is at least 2 bits wide, not {self.width}")

    @property
    def payload_width(self):
        """Bits in one payload: ``count * width``."""
        return self.count * self.width

    @property
    def value_range(self):
        """The ``(lowest, highest)`` value an element can carry."""
        if self.kind == "ternary":
            return -1, 1
        if self.kind == "binary":
            return -1, 1
        if self.kind == "uint":
            return 0, (1 << self.width) - 1
        return -(1 << (self.width - 1)), (1 << (self.width - 1)) - 1

    def invalid(self, values):
        """A boolean mask of the elements of ``values`` this encoding cannot carry."""
        values = np.asarray(values)
        if self.kind == "binary":
            return (values != -1) & (values != 1)
        lo, hi = self.value_range
        return (values < lo) | (values > hi)

    def pack(self, values):
        """Payload integers for a batch of vectors.

        Parameters
        ----------
        values : array_like of int, shape ``(N, count)``
            Element values (not bit patterns).

        Returns
        -------
        list of int
            ``N`` non-negative payloads of ``payload_width`` bits.

        Raises
        ------
        ValueError
            If the shape is wrong or a value is outside the encoding's range.
        """
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.count:
            raise ValueError(
                f"Expected values of shape (N, {self.count}), not {tuple(values.shape)}"
            )
        bad = self.invalid(values)
        if bad.any():
            n, k = (int(a) for a in np.argwhere(bad)[0])
            raise ValueError(
                f"Vector {n}, element {k}: {int(values[n, k])} is not a {self.kind} value "
                f"of {self.width} bits"
            )
        if self.kind == "binary":
            fields = (values > 0).astype(np.uint64)
        else:
            fields = (values.astype(np.int64) & ((1 << self.width) - 1)).astype(np.uint64)
        shifts = np.arange(self.width, dtype=np.uint64)
        payloads = []
        for start in range(0, len(fields), _CHUNK):
            chunk = fields[start : start + _CHUNK]
            bits = ((chunk[:, :, None] >> shifts) & np.uint64(1)).astype(np.uint8)
            packed = np.packbits(bits.reshape(len(chunk), -1), axis=1, bitorder="little")
            payloads.extend(int.from_bytes(row.tobytes(), "little") for row in packed)
        return payloads

    def unpack(self, payloads):
        """Element values of a batch of payloads; the inverse of :meth:`pack`.

        A ternary field ``0b10`` (no legal value) decodes as -2, so that it shows in reports.

        Parameters
        ----------
        payloads : sequence of int
            Non-negative payloads of at most ``payload_width`` bits.

        Returns
        -------
        numpy.ndarray of int64, shape ``(N, count)``
        """
        nbits = self.payload_width
        nbytes = (nbits + 7) // 8
        out = np.empty((len(payloads), self.count), dtype=np.int64)
        weights = np.int64(1) << np.arange(self.width, dtype=np.int64)
        for start in range(0, len(payloads), _CHUNK):
            chunk = payloads[start : start + _CHUNK]
            for payload in chunk:
                if payload < 0 or payload >> nbits:
                    raise ValueError(f"Payload {payload:#x} does not fit in {nbits} bits")
            raw = np.frombuffer(b"".join(p.to_bytes(nbytes, "little") for p in chunk), np.uint8)
            bits = np.unpackbits(raw.reshape(len(chunk), nbytes), axis=1, bitorder="little")
            bits = bits[:, :nbits].reshape(len(chunk), self.count, self.width).astype(np.int64)
            out[start : start + len(chunk)] = bits @ weights
        if self.kind == "binary":
            return 2 * out - 1
        if self.kind in ("ternary", "int"):
            sign = np.int64(1) << (self.width - 1)
            return (out ^ sign) - sign
        return out


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
class Accelerator:
    """A generated accelerator's folder, as its metadata describes it.

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
    verilog : str
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
        Shapes of one input vector and one result (``()`` for ``argmax``).
    output_kind : str
        ``"argmax"`` or ``"values"``.
    latency, initiation_interval : int
        The predicted figures, in cycles.
    """

    directory: str
    metadata_path: str
    metadata: dict
    name: str
    top: str
    verilog: str
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
        return os.path.join(self.directory, "vectors.npz")

    def load_vectors(self, count=None):
        """Read the first ``count`` vectors (all when ``None``) and pack their payloads.

        Raises
        ------
        AcceleratorError
            If ``vectors.npz`` is missing or malformed, holds fewer than ``count`` vectors, or
            holds a value the port encodings cannot carry.
        """
        path = self.vectors_path
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except FileNotFoundError:
            raise AcceleratorError(f"{path}: no such file (the test vectors)") from None
        except (OSError, ValueError) as exc:
            raise AcceleratorError(f"{path}: not a NumPy .npz archive: {exc}") from None
        for key in ("inputs", "outputs"):
            if key not in arrays:
                raise AcceleratorError(f"{path}: no array {key!r}")
            if not np.issubdtype(arrays[key].dtype, np.integer):
                raise AcceleratorError(
                    f"{path}: {key!r} must hold integers, not {arrays[key].dtype}"
                )
        inputs, outputs = arrays["inputs"], arrays["outputs"]
        source = str(arrays["source"]) if "source" in arrays else "unknown"
        if inputs.shape[1:] != self.input_shape:
            raise AcceleratorError(
                f"{path}: 'inputs' has shape {inputs.shape}, expected (N, "
                f"{', '.join(map(str, self.input_shape))}) for input.shape {list(self.input_shape)}"
            )
        if outputs.shape != (len(inputs),) + self.output_shape:
            raise AcceleratorError(
                f"{path}: 'outputs' has shape {outputs.shape}, expected "
                f"{(len(inputs),) + self.output_shape} ({len(inputs)} inputs, output.shape "
                f"{list(self.output_shape)})"
            )
        if count is not None:
            if not isinstance(count, int) or isinstance(count, bool) or count < 1:
                raise AcceleratorError(f"Vector count must be a positive integer, not {count!r}")
            if count > len(inputs):
                raise AcceleratorError(
                    f"{path}: holds {len(inputs)} vectors, fewer than the {count} asked for"
                )
            inputs, outputs = inputs[:count], outputs[:count]
        if len(inputs) == 0:
            raise AcceleratorError(f"{path}: holds no vectors")
        n = len(inputs)
        try:
            input_payloads = self.input.pack(inputs.reshape(n, -1))
        except ValueError as exc:
            raise AcceleratorError(f"{path}: 'inputs': {exc}") from None
        try:
            output_payloads = self.output.pack(outputs.reshape(n, -1))
        except ValueError as exc:
            raise AcceleratorError(f"{path}: 'outputs': {exc}") from None
        return Vectors(inputs, outputs, source, input_payloads, output_payloads)

    def format_result(self, values):
        """A result's values as text: the class index for ``argmax``, else the value list."""
        values = np.asarray(values).reshape(-1)
        if self.output_kind == "argmax":
            return str(int(values[0]))
        return "[" + " ".join(str(int(v)) for v in values) + "]"


def find_metadata(directory):
    """The metadata JSON in ``directory``: the one ``*.json`` whose format is the contract's.

    Raises
    ------
    AcceleratorError
        If the folder does not exist or holds no such file, or more than one.
    """
    if not os.path.isdir(directory):
        raise AcceleratorError(f"{directory}: no such folder")
    found = []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("format") == METADATA_FORMAT:
            found.append(path)
    if not found:
        raise AcceleratorError(
            f"{directory}: no accelerator metadata (a *.json file with format "
            f"{METADATA_FORMAT!r}); make one with 'tnngen verilog MODEL -o {directory}'"
        )
    if len(found) > 1:
        names = ", ".join(os.path.basename(p) for p in found)
        raise AcceleratorError(f"{directory}: more than one accelerator metadata file: {names}")
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
                raise AcceleratorError(f"{self.path}: missing field {dotted!r}")
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
            raise AcceleratorError(f"{self.path}: field {dotted!r} must be {what}, not {node!r}")
        return node

    def fail(self, dotted, message):
        raise AcceleratorError(f"{self.path}: field {dotted!r}: {message}")


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


def load(directory):
    """Read and check the accelerator in ``directory``.

    Returns
    -------
    Accelerator

    Raises
    ------
    AcceleratorError
        If the folder, its metadata or its Verilog file does not honour ``docs/accelerator.md``.
    """
    path = find_metadata(directory)
    with open(path) as f:
        doc = json.load(f)
    fields = _Fields(path, doc)
    name = fields.get("name", str)
    top = fields.get("top", str)
    verilog = os.path.join(directory, fields.get("verilog", str))
    if not os.path.isfile(verilog):
        fields.fail("verilog", f"{verilog}: no such file")
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
    if output_kind not in ("argmax", "values"):
        fields.fail("output.kind", f"must be 'argmax' or 'values', not {output_kind!r}")
    output_shape = tuple(fields.get("output.shape", list)) if output_kind == "values" else ()
    if output_kind == "argmax":
        if doc["output"].get("shape", []) != []:
            fields.fail("output.shape", "must be [] for an argmax output")
        if output_encoding.count != 1 or output_encoding.kind != "uint":
            fields.fail("output", "an argmax output is one uint element, the class index")
    elif int(np.prod(output_shape)) != output_encoding.count:
        fields.fail("output.count", f"{output_encoding.count} for output.shape {output_shape}")
    latency = fields.get("latency", int)
    if latency < 0:
        fields.fail("latency", f"must not be negative, not {latency}")
    initiation_interval = fields.get("initiation_interval", int)
    if initiation_interval < 1:
        fields.fail("initiation_interval", f"must be at least 1, not {initiation_interval}")
    return Accelerator(
        directory=directory,
        metadata_path=path,
        metadata=doc,
        name=name,
        top=top,
        verilog=verilog,
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
