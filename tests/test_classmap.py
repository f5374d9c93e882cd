# amaranth: UnusedElaboratable=no

import numpy as np
import pytest
from amaranth.hdl import unsigned
from streams import drive, random_values, timed, to_wire

from hw.classmap import ClassMap
from hw.encoding import ValueEncoding


def frames_of(rng, encoding, frames, positions, channels):
    values = random_values(rng, encoding, (frames, positions, channels))
    values[0] = encoding.min  # every channel tied at every position: all class 0
    if frames > 1:
        values[1, :, -1] = encoding.max  # ties broken by the last channel, where it is the max
    return values


def rtl_class_map(values, encoding, *, stages, seed, max_delay=3):
    frames, positions, channels = values.shape
    dut = ClassMap(encoding=encoding, channels=channels, positions=positions, stages=stages)
    pixels = [to_wire(encoding, p) for frame in values for p in frame]
    got = drive(dut, pixels, frames, seed=seed, max_delay=max_delay)
    return np.array([list(g) for g in got])


@pytest.mark.parametrize(
    "positions, channels, stages",
    [(1, 1, 1), (1, 3, 0), (6, 1, 1), (6, 4, 2), (9, 10, 4), (9, 10, 8), (4, 2, 1), (12, 5, 0)],
)
@pytest.mark.parametrize(
    "encoding",
    [ValueEncoding.ternary(), ValueEncoding.binary(), ValueEncoding.int(6)],
    ids=lambda e: e.name,
)
def test_per_pixel_argmax_with_stalls(positions, channels, stages, encoding):
    rng = np.random.default_rng([positions, channels, stages, encoding.width])
    values = frames_of(rng, encoding, 8, positions, channels)
    got = rtl_class_map(values, encoding, stages=stages, seed=positions + channels)
    assert got.tolist() == np.argmax(values, axis=2).tolist()


@pytest.mark.parametrize(
    "positions, channels, stages",
    [(1, 2, 1), (1, 2, 3), (5, 3, 2), (5, 3, 3), (5, 3, 5), (8, 16, 4), (8, 16, 8), (8, 16, 9)],
)
def test_latency_and_interval(positions, channels, stages):
    enc = ValueEncoding.int(4)
    rng = np.random.default_rng(positions)
    values = random_values(rng, enc, (5, positions, channels))
    dut = ClassMap(encoding=enc, channels=channels, positions=positions, stages=stages)
    pixels = [to_wire(enc, p) for frame in values for p in frame]
    in_cycles, out_cycles, out = timed(dut, pixels, len(values))
    assert [list(o) for o in out] == np.argmax(values, axis=2).tolist()
    last_pixels = in_cycles[positions - 1 :: positions]
    assert [o - i for i, o in zip(last_pixels, out_cycles, strict=True)] == [dut.latency] * 5
    assert np.diff(out_cycles).tolist() == [dut.initiation_interval] * 4


def test_shapes():
    dut = ClassMap(encoding=ValueEncoding.ternary(), channels=10, positions=6, stages=1)
    assert dut.index_shape == unsigned(4)
    assert dut.o.payload.shape().length == 6
    assert ClassMap(
        encoding=ValueEncoding.ternary(), channels=1, positions=2, stages=1
    ).index_shape == unsigned(1)


def test_parameter_errors():
    message = r"^Stages must be between 0 and 9 for 10 channels, not 10$"
    with pytest.raises(ValueError, match=message):
        ClassMap(encoding=ValueEncoding.ternary(), channels=10, positions=3, stages=10)
    with pytest.raises(ValueError, match=r"^Position count must be a positive integer, not 0$"):
        ClassMap(encoding=ValueEncoding.ternary(), channels=3, positions=0, stages=1)
    with pytest.raises(ValueError, match=r"^Channel count must be a positive integer, not 0$"):
        ClassMap(encoding=ValueEncoding.ternary(), channels=0, positions=3, stages=1)
