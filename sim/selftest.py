"""Small accelerators that honour the contract, for testing the bench itself.

The bench must be shown to catch what it is meant to catch before it is trusted on generated
accelerators. These components have the ports, payload packing and metadata of
``docs/accelerator.md`` and compute simple functions with exactly known timing:

- :class:`PipelinedAccelerator`: one function of the whole input vector per cycle, through a
  chain of ``stages`` registers with stream back-pressure (latency ``stages``, initiation
  interval 1), like a fully unrolled network;
- :class:`SequentialArgmax`: scans the vector one element per cycle (initiation interval
  ``count``), like a folded engine, with an input ``ready`` that depends combinationally on the
  output's ``ready``.

Either can carry a deliberate fault. :func:`write_accelerator` emits one to a folder as
``tnngen verilog`` would. The expected outputs are always computed by the caller in NumPy,
independently of the hardware description.
"""

import hashlib
import json

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gen import folder
from gen.payload import Encoding

__all__ = [
    "FUNCTIONS",
    "PipelinedAccelerator",
    "SequentialArgmax",
    "output_encoding",
    "write_accelerator",
]

#: Functions :class:`PipelinedAccelerator` computes, for an input vector ``x`` of ``n`` elements:
#: ``argmax`` the index of the largest element (ties to the lowest index), ``pairsum``
#: ``x[k] + x[(k+1) % n]``, ``sign`` the sign of that sum (ternary), ``step`` +1 where that sum is
#: non-negative, else -1 (binary).
FUNCTIONS = ("argmax", "pairsum", "sign", "step")


def _element_shape(encoding):
    if encoding.kind in ("ternary", "int"):
        return signed(encoding.width)
    return unsigned(encoding.width)


def _elements(payload, encoding):
    """The element values of a payload, as Amaranth values of their numeric meaning."""
    shape = _element_shape(encoding)
    values = []
    for k in range(encoding.count):
        field = payload[k * encoding.width : (k + 1) * encoding.width]
        if encoding.kind == "binary":
            values.append(Mux(field, Const(1, signed(2)), Const(-1, signed(2))))
        else:
            values.append(field.as_signed() if shape.signed else field)
    return values


def output_encoding(function, encoding):
    """The output :class:`~sim.Encoding` of ``function`` on inputs of ``encoding``."""
    if function == "argmax":
        return Encoding("uint", max(1, (encoding.count - 1).bit_length()), 1)
    if function == "sign":
        return Encoding("ternary", 2, encoding.count)
    if function == "step":
        return Encoding("binary", 1, encoding.count)
    if function == "pairsum":
        lo, hi = encoding.value_range
        if lo >= 0:
            return Encoding("uint", (2 * hi).bit_length(), encoding.count)
        width = max((-2 * lo - 1).bit_length(), (2 * hi).bit_length()) + 1
        return Encoding("int", width, encoding.count)
    raise ValueError(f"Function must be one of {', '.join(FUNCTIONS)}, not {function!r}")


def _argmax(m, values):
    best, index = values[0], Const(0)
    for k, value in enumerate(values[1:], start=1):
        greater = Signal(name=f"greater_{k}")
        m.d.comb += greater.eq(value > best)
        best = Mux(greater, value, best)
        index = Mux(greater, k, index)
    return index


def _check_encoding(encoding):
    if not isinstance(encoding, Encoding):
        raise TypeError(f"Input encoding must be an Encoding, not {encoding!r}")


class PipelinedAccelerator(wiring.Component):
    """A function of the whole input vector per cycle, through ``stages`` registers.

    Parameters
    ----------
    input_encoding : Encoding
        Encoding and element count of the input vector.
    function : str
        One of :data:`FUNCTIONS`.
    stages : int
        Register stages between input and output: the latency in cycles.
    fault : bool
        Deliberately wrong: bit 0 of the result is inverted whenever input elements 0 and 1
        are equal.

    Members
    -------
    i : In(stream.Signature(count * width))
        Input vectors.
    o : Out(stream.Signature(output width))
        Results, packed as :func:`output_encoding` gives.
    """

    def __init__(self, *, input_encoding, function, stages, fault=False):
        _check_encoding(input_encoding)
        if not isinstance(stages, int) or stages < 1:
            raise ValueError(f"Stages must be a positive integer, not {stages!r}")
        self.input_encoding = input_encoding
        self.output_encoding = output_encoding(function, input_encoding)
        self.function = function
        self.stages = stages
        self.fault = fault
        super().__init__(
            {
                "i": In(stream.Signature(input_encoding.payload_width)),
                "o": Out(stream.Signature(self.output_encoding.payload_width)),
            }
        )

    @property
    def latency(self):
        """Cycles from an input's transfer to its result's ``valid``."""
        return self.stages

    @property
    def initiation_interval(self):
        """Cycles between accepted inputs with no stalls."""
        return 1

    def _function(self, m):
        x = _elements(self.i.payload, self.input_encoding)
        if self.function == "argmax":
            result = _argmax(m, x)
        else:
            n = len(x)
            fields = []
            for k in range(n):
                total = x[k] + x[(k + 1) % n]
                if self.function == "pairsum":
                    value = total
                elif self.function == "sign":
                    value = Mux(total > 0, 1, Mux(total < 0, -1, 0))
                else:
                    value = total >= 0
                fields.append(value.as_unsigned()[: self.output_encoding.width])
            result = Cat(*fields)
        value = Signal(self.output_encoding.payload_width)
        m.d.comb += value.eq(result)
        if self.fault:
            wrong = Signal()
            x = _elements(self.i.payload, self.input_encoding)
            m.d.comb += wrong.eq(x[0] == x[1])
            flipped = Signal.like(value)
            m.d.comb += flipped.eq(value ^ wrong)
            return flipped
        return value

    def elaborate(self, platform):
        m = Module()
        value = self._function(m)
        valid = [Signal(name=f"valid_{s}") for s in range(self.stages)]
        data = [Signal(len(value), name=f"data_{s}") for s in range(self.stages)]
        ready = [Signal(name=f"ready_{s}") for s in range(self.stages)] + [self.o.ready]
        for s in range(self.stages):
            # A stage takes a new value when it is empty or its value moves on this cycle.
            m.d.comb += ready[s].eq(~valid[s] | ready[s + 1])
            with m.If(ready[s]):
                m.d.sync += valid[s].eq(self.i.valid if s == 0 else valid[s - 1])
                m.d.sync += data[s].eq(value if s == 0 else data[s - 1])
        m.d.comb += [
            self.i.ready.eq(ready[0]),
            self.o.valid.eq(valid[-1]),
            self.o.payload.eq(data[-1]),
        ]
        return m


class SequentialArgmax(wiring.Component):
    """The index of the largest input element, found one element per cycle.

    The vector is held while it is scanned; the next one is accepted in the scan's last cycle
    when the result can move to the output register, so that ``i.ready`` depends
    combinationally on ``o.ready``.

    Parameters
    ----------
    input_encoding : Encoding
        Encoding and element count (at least 2) of the input vector.
    fault : bool
        Deliberately wrong: ties go to the highest index instead of the lowest.

    Members
    -------
    i : In(stream.Signature(count * width))
        Input vectors.
    o : Out(stream.Signature(index width))
        Class indices.
    """

    def __init__(self, *, input_encoding, fault=False):
        _check_encoding(input_encoding)
        if input_encoding.count < 2:
            raise ValueError(f"Element count must be at least 2, not {input_encoding.count}")
        self.input_encoding = input_encoding
        self.output_encoding = output_encoding("argmax", input_encoding)
        self.fault = fault
        super().__init__(
            {
                "i": In(stream.Signature(input_encoding.payload_width)),
                "o": Out(stream.Signature(self.output_encoding.payload_width)),
            }
        )

    @property
    def latency(self):
        """Cycles from an input's transfer to its result's ``valid``: ``count + 1``."""
        return self.input_encoding.count + 1

    @property
    def initiation_interval(self):
        """Cycles between accepted inputs with no stalls: ``count``."""
        return self.input_encoding.count

    def elaborate(self, platform):
        m = Module()
        count = self.input_encoding.count
        held = Signal(self.input_encoding.payload_width)
        busy = Signal()
        position = Signal(range(count))
        # A binary element's value (-1 or +1) needs a signed register.
        binary = self.input_encoding.kind == "binary"
        best = Signal(signed(2) if binary else _element_shape(self.input_encoding))
        best_index = Signal(range(count))
        element = Array(_elements(held, self.input_encoding))[position]
        last = Signal()
        out_free = Signal()
        better = Signal()
        m.d.comb += [
            last.eq(busy & (position == count - 1)),
            out_free.eq(~self.o.valid | self.o.ready),
            better.eq((element >= best) if self.fault else (element > best)),
            self.i.ready.eq(~busy | (last & out_free)),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(busy & (~last | out_free)):
            m.d.sync += position.eq(position + 1)
            with m.If((position == 0) | better):
                m.d.sync += [best.eq(element), best_index.eq(position)]
            with m.If(last):
                m.d.sync += [
                    busy.eq(0),
                    position.eq(0),
                    self.o.valid.eq(1),
                    self.o.payload.eq(Mux((position == 0) | better, position, best_index)),
                ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), busy.eq(1), position.eq(0)]
        return m


def write_accelerator(
    directory,
    component,
    *,
    name,
    inputs,
    outputs,
    output_kind,
    source="random",
    latency=None,
    initiation_interval=None,
):
    """Emit ``component`` to ``directory`` as ``tnngen verilog`` would: Verilog, metadata, vectors.

    Parameters
    ----------
    directory : str
        Folder to write (created if needed).
    component : PipelinedAccelerator or SequentialArgmax
        The design.
    name : str
        The accelerator's name; the top module is this with non-identifier characters as ``_``.
    inputs, outputs : numpy.ndarray
        Input values ``(N, count)`` and the expected results (``(N,)`` class indices for
        ``argmax``, else ``(N, count)``), computed independently of the design.
    output_kind : str
        ``"argmax"`` or ``"values"``.
    source : str
        Where the inputs came from.
    latency, initiation_interval : int, optional
        Figures to write into the metadata instead of the component's own (to test that the
        bench catches a wrong prediction).

    Returns
    -------
    str
        Path of the metadata JSON.
    """
    top = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    text = verilog.convert(component, name=top, emit_src=False)
    verilog_name = f"{name}.v"
    enc_in, enc_out = component.input_encoding, component.output_encoding
    input_type = {"ternary": "ternary", "binary": "binary"}.get(
        enc_in.kind, f"{enc_in.kind}{enc_in.width}"
    )
    description = json.dumps(
        {"selftest": type(component).__name__, "name": name, "input": input_type}, sort_keys=True
    )
    metadata = {
        "format": folder.FORMAT,
        "name": name,
        "top": top,
        "verilog": verilog_name,
        "description_sha256": hashlib.sha256(description.encode()).hexdigest(),
        "generator": {"tool": "sim.selftest", "version": "0", "options": {}},
        "clock": "clk",
        "reset": {"name": "rst", "active": "high", "synchronous": True},
        "ports": {
            side: {
                "payload": f"{side}__payload",
                "valid": f"{side}__valid",
                "ready": f"{side}__ready",
                "width": enc.payload_width,
            }
            for side, enc in (("i", enc_in), ("o", enc_out))
        },
        "input": {
            "shape": [enc_in.count],
            "count": enc_in.count,
            "type": input_type,
            "encoding": enc_in.kind,
            "element_width": enc_in.width,
        },
        "output": {
            "kind": output_kind,
            "shape": [] if output_kind == "argmax" else [enc_out.count],
            "count": enc_out.count,
            "encoding": enc_out.kind,
            "element_width": enc_out.width,
        },
        "latency": component.latency if latency is None else latency,
        "initiation_interval": (
            component.initiation_interval if initiation_interval is None else initiation_interval
        ),
        "layers": [],
    }
    vectors = (np.asarray(inputs, dtype=np.int64), np.asarray(outputs, dtype=np.int64), source)
    paths = folder.write_files(directory, name, text, metadata, vectors)
    return paths[1]
