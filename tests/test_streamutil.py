# amaranth: UnusedElaboratable=no

"""The stream helpers of ``hw.streamutil``: skid buffer, serializer and deserializer."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator
from streams import drive, from_wire, random_values, timed, to_wire

from hw.encoding import ValueEncoding
from hw.streamutil import PixelsToVector, SkidBuffer, VectorToPixels

# --- SkidBuffer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("max_delay", [0, 1, 4])
def test_skid_buffer_passes_every_transfer_in_order(max_delay):
    dut = SkidBuffer(unsigned(8))
    inputs = list(range(200, 240))
    assert drive(dut, inputs, len(inputs), seed=max_delay, max_delay=max_delay) == inputs


@pytest.mark.parametrize("max_delay", [0, 3])
def test_skid_buffer_of_a_vector_keeps_every_element(max_delay):
    # an array payload (a layer's output vector): every element of every transfer, in order
    encoding = ValueEncoding.int(5)
    dut = SkidBuffer(encoding.layout(6))
    rng = np.random.default_rng(max_delay)
    vectors = rng.integers(-16, 16, size=(30, 6))
    wires = [to_wire(encoding, v) for v in vectors]
    got = drive(dut, wires, len(wires), seed=max_delay, max_delay=max_delay)
    assert [from_wire(encoding, w).tolist() for w in got] == [v.tolist() for v in vectors]


def test_skid_buffer_full_rate_and_registered_ready():
    dut = SkidBuffer(signed(5))
    inputs = [(v % 31) - 15 for v in range(20)]
    in_cycles, out_cycles, outputs = timed(dut, inputs, len(inputs))
    assert outputs == inputs
    assert out_cycles[0] - in_cycles[0] == dut.latency
    assert np.diff(in_cycles).tolist() == [dut.initiation_interval] * (len(inputs) - 1)
    assert np.diff(out_cycles).tolist() == [dut.initiation_interval] * (len(inputs) - 1)


def test_skid_buffer_ready_does_not_follow_output_ready_combinationally():
    dut = SkidBuffer(unsigned(4))
    seen = []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, 3)
        ctx.set(dut.o.ready, 0)
        await ctx.tick()  # first transfer goes to the output register
        await ctx.tick()  # second one parks in the skid register
        seen.append(ctx.get(dut.i.ready))
        ctx.set(dut.o.ready, 1)  # same cycle: a combinational path would raise i.ready now
        seen.append(ctx.get(dut.i.ready))
        await ctx.tick()
        seen.append(ctx.get(dut.i.ready))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 0, 1]


# --- VectorToPixels / PixelsToVector -------------------------------------------------------------


@pytest.mark.parametrize(
    "encoding, pixels, channels",
    [
        (ValueEncoding.ternary(), 1, 1),
        (ValueEncoding.ternary(), 6, 2),
        (ValueEncoding.binary(), 5, 3),
        (ValueEncoding.uint(4), 4, 1),
        (ValueEncoding.int(6), 3, 4),
    ],
)
@pytest.mark.parametrize("max_delay", [0, 3])
def test_vector_to_pixels_and_back(encoding, pixels, channels, max_delay):
    rng = np.random.default_rng(pixels * 10 + channels)
    frames = random_values(rng, encoding, (4, pixels, channels))
    vectors = [to_wire(encoding, f) for f in frames]

    ser = VectorToPixels(shape=encoding.shape, pixels=pixels, channels=channels)
    out = drive(ser, vectors, 4 * pixels, seed=max_delay, max_delay=max_delay)
    got = np.array([from_wire(encoding, p) for p in out]).reshape(4, pixels, channels)
    assert np.array_equal(got, frames)

    des = PixelsToVector(shape=encoding.shape, pixels=pixels, channels=channels)
    pixel_payloads = [to_wire(encoding, p) for f in frames for p in f]
    out = drive(des, pixel_payloads, 4, seed=max_delay + 7, max_delay=max_delay)
    got = np.array([from_wire(encoding, v) for v in out]).reshape(4, pixels, channels)
    assert np.array_equal(got, frames)


@pytest.mark.parametrize("pixels", [1, 5])
def test_serializer_timing_matches_properties(pixels):
    enc = ValueEncoding.ternary()
    rng = np.random.default_rng(pixels)
    frames = random_values(rng, enc, (3, pixels, 2))

    ser = VectorToPixels(shape=enc.shape, pixels=pixels, channels=2)
    in_cycles, out_cycles, _ = timed(ser, [to_wire(enc, f) for f in frames], 3 * pixels)
    assert out_cycles[0] - in_cycles[0] == ser.latency
    assert np.diff(in_cycles).tolist() == [ser.initiation_interval] * 2
    assert np.diff(out_cycles).tolist() == [1] * (3 * pixels - 1)  # no bubble between vectors

    des = PixelsToVector(shape=enc.shape, pixels=pixels, channels=2)
    payloads = [to_wire(enc, p) for f in frames for p in f]
    in_cycles, out_cycles, _ = timed(des, payloads, 3)
    assert np.diff(in_cycles).tolist() == [1] * (3 * pixels - 1)
    last_pixels = in_cycles[pixels - 1 :: pixels]
    assert [o - i for i, o in zip(last_pixels, out_cycles, strict=True)] == [des.latency] * 3
    assert np.diff(out_cycles).tolist() == [des.initiation_interval] * 2


def test_parameter_errors():
    with pytest.raises(TypeError, match=r"^Pixel count must be a positive integer, not 2\.0$"):
        VectorToPixels(shape=signed(2), pixels=2.0, channels=1)
    with pytest.raises(ValueError, match=r"^Pixel count must be a positive integer, not 0$"):
        PixelsToVector(shape=signed(2), pixels=0, channels=1)
    with pytest.raises(ValueError, match=r"^Channel count must be a positive integer, not -1$"):
        VectorToPixels(shape=signed(2), pixels=1, channels=-1)
    with pytest.raises(TypeError, match=r"^Channel count must be a positive integer, not True$"):
        PixelsToVector(shape=signed(2), pixels=1, channels=True)
    with pytest.raises(TypeError, match=r"^Value shape must be a shape, not 'int8'$"):
        VectorToPixels(shape="int8", pixels=1, channels=1)
    with pytest.raises(TypeError, match=r"^Payload shape must be a shape, not None$"):
        SkidBuffer(None)
