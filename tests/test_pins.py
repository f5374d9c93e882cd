# amaranth: UnusedElaboratable=no

"""The narrow-pin wrapper, in Amaranth's simulator, around a dummy accelerator.

``ref_pins`` (what the words on the pins must be) and ``rtl_pins`` (the wrapper driven with
random stalls on both sides) share one signature and are compared over hand-picked widths and
seeded random vectors. Latency and throughput are measured stall-free, never assumed.
"""

import random

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from streams import drive

from hw.pins import PinWrapper, VerilogAccelerator, words_per_transfer
from hw.streamutil import SkidBuffer


def dummy_function(x, in_width, out_width):
    """What the dummy accelerator computes: a fold of the input's bits, plus a constant."""
    acc = 0
    for shift in range(0, in_width, out_width):
        acc ^= (x >> shift) & ((1 << out_width) - 1)
    return (acc + 0x5A5A5A5A) & ((1 << out_width) - 1)


class DummyAccelerator(wiring.Component):
    """A stand-in accelerator: ``dummy_function`` then ``stages`` skid buffers."""

    def __init__(self, *, in_width, out_width, stages=2):
        self.in_width, self.out_width, self.stages = in_width, out_width, stages
        super().__init__(
            {"i": In(stream.Signature(in_width)), "o": Out(stream.Signature(out_width))}
        )

    @property
    def latency(self):
        return self.stages

    def elaborate(self, platform):
        m = Module()
        folded = Signal(self.out_width)
        x = self.i.payload
        parts = [x[s : s + self.out_width] for s in range(0, self.in_width, self.out_width)]
        acc = parts[0]
        for part in parts[1:]:
            acc = acc ^ part
        m.d.comb += folded.eq(acc + (0x5A5A5A5A & ((1 << self.out_width) - 1)))
        buffers = [SkidBuffer(self.out_width) for _ in range(self.stages)]
        for k, b in enumerate(buffers):
            m.submodules[f"stage{k}"] = b
        m.d.comb += [
            buffers[0].i.payload.eq(folded),
            buffers[0].i.valid.eq(self.i.valid),
            self.i.ready.eq(buffers[0].i.ready),
        ]
        for a, b in zip(buffers[:-1], buffers[1:], strict=True):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, buffers[-1].o, wiring.flipped(self.o))
        return m


def to_words(value, width, pin_width):
    return [
        (value >> (k * pin_width)) & ((1 << pin_width) - 1)
        for k in range(words_per_transfer(width, pin_width))
    ]


def ref_pins(vectors, *, in_width, out_width, pin_width):
    """The words the wrapper must send for ``vectors``, and the words that carry them in."""
    words_in = [w for v in vectors for w in to_words(v, in_width, pin_width)]
    words_out = [
        w
        for v in vectors
        for w in to_words(dummy_function(v, in_width, out_width), out_width, pin_width)
    ]
    return words_in, words_out


def rtl_pins(vectors, *, in_width, out_width, pin_width, seed=0, max_delay=3):
    """Drive the wrapper around a dummy accelerator with stalls; return the same pair."""
    acc = DummyAccelerator(in_width=in_width, out_width=out_width)
    dut = PinWrapper(acc, pin_width=pin_width)
    words_in = [w for v in vectors for w in to_words(v, in_width, pin_width)]
    n_out = len(vectors) * dut.out_words
    words_out = drive(
        dut, words_in, n_out, seed=seed, max_delay=max_delay, quiet=8 + acc.latency + dut.latency
    )
    return words_in, words_out


CASES = [
    # in_width, out_width, pin_width
    (8, 8, 8),  # one word each way
    (20, 4, 8),  # three words in, the last one padded; one narrow word out
    (32, 17, 8),  # four words in, three out
    (6, 3, 1),  # one pin: bit-serial
    (13, 11, 5),
]


@pytest.mark.parametrize(("in_width", "out_width", "pin_width"), CASES)
def test_round_trip_with_stalls(in_width, out_width, pin_width):
    rng = random.Random(in_width * 100 + out_width)
    vectors = [0, (1 << in_width) - 1] + [rng.getrandbits(in_width) for _ in range(10)]
    widths = {"in_width": in_width, "out_width": out_width, "pin_width": pin_width}
    expected = ref_pins(vectors, **widths)
    for seed, max_delay in [(0, 0), (1, 3), (2, 7)]:
        got = rtl_pins(vectors, **widths, seed=seed, max_delay=max_delay)
        assert got == expected, f"seed {seed}, max_delay {max_delay}"


def _stall_free(dut, words_in, n_out, limit=2000):
    in_cycles, out_cycles, outputs = [], [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        pending = list(words_in)
        for cycle in range(limit):
            if pending:
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, pending[0])
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_valid, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.payload
            )
            if i_valid and i_ready:
                in_cycles.append(cycle)
                pending.pop(0)
            if o_valid:
                out_cycles.append(cycle)
                outputs.append(o_payload)
                if len(outputs) == n_out:
                    return

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return in_cycles, out_cycles, outputs


@pytest.mark.parametrize(("in_width", "out_width", "pin_width"), CASES)
def test_latency_and_rate(in_width, out_width, pin_width):
    acc = DummyAccelerator(in_width=in_width, out_width=out_width, stages=3)
    dut = PinWrapper(acc, pin_width=pin_width)
    vectors = list(range(1, 7))
    words_in, expected = ref_pins(
        vectors, in_width=in_width, out_width=out_width, pin_width=pin_width
    )
    in_cycles, out_cycles, outputs = _stall_free(dut, words_in, len(expected))
    assert outputs == expected
    # The first result word is offered acc.latency + dut.latency cycles after the last word of
    # the first vector went in.
    last_word_of_first = in_cycles[dut.in_words - 1]
    assert out_cycles[0] - last_word_of_first == acc.latency + dut.latency
    # Stall-free, one word moves every cycle on the busier side, and the deserializer rests a
    # cycle between vectors (its ready is a register).
    per_vector = max(dut.in_words + 1, dut.out_words)
    assert dut.pin_interval == per_vector
    firsts = out_cycles[:: dut.out_words]
    assert all(b - a == per_vector for a, b in zip(firsts[1:], firsts[2:], strict=False))


def test_parameter_checks():
    acc = DummyAccelerator(in_width=8, out_width=8)
    with pytest.raises(ValueError, match=r"^Pin width must be a positive integer, not 0$"):
        PinWrapper(acc, pin_width=0)
    with pytest.raises(TypeError, match=r"^Pin width must be a positive integer, not '8'$"):
        PinWrapper(acc, pin_width="8")
    with pytest.raises(TypeError, match=r"^Accelerator must be a component with stream"):
        PinWrapper(object())
    with pytest.raises(TypeError, match=r"^Module name must be a non-empty string, not ''$"):
        VerilogAccelerator(module="", in_width=8, out_width=8)
    with pytest.raises(ValueError, match=r"^Input width must be a positive integer, not -1$"):
        VerilogAccelerator(module="m", in_width=-1, out_width=8)


def test_verilog_instance_keeps_accelerator_apart():
    inner = VerilogAccelerator(
        module="tiny_net",
        in_width=40,
        out_width=4,
        port_names={"clock": "clock", "reset": "reset"},
    )
    wrapper = PinWrapper(inner, pin_width=8)
    assert (wrapper.in_words, wrapper.out_words) == (5, 1)
    text = verilog.convert(wrapper, name="tiny_net_pins", emit_src=False)
    # The accelerator is an instance of its own module, not inlined, with the contract's ports.
    assert "tiny_net accelerator (" in text
    for port in (".clock(", ".reset(", ".i__payload(", ".o__ready("):
        assert port in text
    assert "module tiny_net_pins(" in text
