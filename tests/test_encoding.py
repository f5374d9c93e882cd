import itertools

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.encoding import ValueEncoding, signed_value, ternary_split


def test_ternary_bits_follow_design():
    enc = ValueEncoding.ternary()
    assert enc.encode([-1, 0, 1]).tolist() == [0b11, 0b00, 0b01]
    assert enc.shape == signed(2)


def test_binary_bits_follow_design():
    enc = ValueEncoding.binary()
    assert enc.encode([-1, 1]).tolist() == [0, 1]
    assert enc.shape == unsigned(1)


@pytest.mark.parametrize(
    "enc",
    [ValueEncoding.ternary(), ValueEncoding.binary(), ValueEncoding.uint(4), ValueEncoding.int(5)],
)
def test_pack_unpack_roundtrip(enc):
    rng = np.random.default_rng(0)
    values = rng.integers(enc.min, enc.max + 1, size=13)
    if enc.kind == "binary":
        values = np.where(values > 0, 1, -1)
    word = enc.pack(values)
    assert word < (1 << (13 * enc.width))
    assert enc.unpack(word, 13).tolist() == values.tolist()
    # element k sits at bits [k*b, (k+1)*b)
    for k, v in enumerate(values.tolist()):
        assert (word >> (k * enc.width)) & ((1 << enc.width) - 1) == int(enc.encode([v])[0])


def test_for_range():
    assert ValueEncoding.for_range(0, 16) == ValueEncoding.uint(5)
    assert ValueEncoding.for_range(-1, 1) == ValueEncoding.int(2)
    assert ValueEncoding.for_range(-128, 127) == ValueEncoding.int(8)
    assert ValueEncoding.for_range(-129, 0) == ValueEncoding.int(9)
    assert ValueEncoding.for_range(0, 0) == ValueEncoding.uint(1)


def test_check_rejects_out_of_range():
    with pytest.raises(ValueError, match=r"Value 2 is not a valid ternary value"):
        ValueEncoding.ternary().check([0, 2])
    with pytest.raises(ValueError, match=r"Value 0 is not a valid binary value"):
        ValueEncoding.binary().check([0])


def test_parameter_errors():
    with pytest.raises(ValueError, match=r"Encoding kind must be one of"):
        ValueEncoding("float", 3)
    with pytest.raises(ValueError, match=r"A ternary encoding is 2 bits wide, not 3"):
        ValueEncoding("ternary", 3)
    with pytest.raises(TypeError, match=r"Encoding width must be an integer, not '4'"):
        ValueEncoding("uint", "4")


def test_hardware_views_of_values():
    tern = Signal(signed(2))
    binary = Signal(1)
    pos, neg = ternary_split(tern)
    tval = signed_value(tern, ValueEncoding.ternary())
    bval = signed_value(binary, ValueEncoding.binary())
    results = []

    async def bench(ctx):
        for t, b in itertools.product([-1, 0, 1], [0, 1]):
            ctx.set(tern, t)
            ctx.set(binary, b)
            results.append((t, b, ctx.get(pos), ctx.get(neg), ctx.get(tval), ctx.get(bval)))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    for t, b, p, n, tv, bv in results:
        assert (p, n) == (int(t == 1), int(t == -1))
        assert tv == t
        assert bv == (1 if b else -1)
