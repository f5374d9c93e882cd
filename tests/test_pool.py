# amaranth: UnusedElaboratable=no

import itertools

import numpy as np
import pytest
from streams import drive, from_wire, random_values, timed, to_wire

from hw.encoding import ValueEncoding
from hw.pool import MaxPool

TERNARY = ValueEncoding.ternary()
BINARY = ValueEncoding.binary()


def ref_maxpool(image, kernel, stride):
    """Max pooling of an ``(h, w, c)`` image: ``(oh * ow, c)``, row-major."""
    (kh, kw), (sy, sx) = kernel, stride
    h, w, _ = image.shape
    oh, ow = (h - kh) // sy + 1, (w - kw) // sx + 1
    return np.array(
        [
            image[oy * sy : oy * sy + kh, ox * sx : ox * sx + kw].max(axis=(0, 1))
            for oy in range(oh)
            for ox in range(ow)
        ]
    )


def check(frames, encoding, kernel, stride=None, *, max_delay=2, seed=0):
    n, h, w, c = frames.shape
    dut = MaxPool(encoding=encoding, height=h, width=w, channels=c, kernel=kernel, stride=stride)
    oh, ow = dut.output_shape
    pixels = [to_wire(encoding, p) for p in frames.reshape(-1, c)]
    out = drive(dut, pixels, n * oh * ow, seed=seed, max_delay=max_delay)
    got = np.array([from_wire(encoding, p) for p in out]).reshape(n, oh * ow, c)
    kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    stride = kernel if stride is None else stride
    stride = stride if isinstance(stride, tuple) else (stride, stride)
    for frame, pooled in zip(frames, got, strict=True):
        assert np.array_equal(pooled, ref_maxpool(frame, kernel, stride))


def test_exhaustive_binary_2x2():
    """Every binary 2 x 2 window (16 of them), one frame each, through a 2 x 2 pool."""
    windows = np.array(list(itertools.product([-1, 1], repeat=4))).reshape(16, 2, 2, 1)
    check(windows, BINARY, 2, max_delay=1)


def test_exhaustive_ternary_pairs():
    """Every pair of ternary values in both positions, pooled 1 x 2 over 2 channels."""
    pairs = np.array(list(itertools.product([-1, 0, 1], repeat=4))).reshape(81, 1, 2, 2)
    check(pairs, TERNARY, (1, 2), max_delay=0)


UINT3, INT5 = ValueEncoding.uint(3), ValueEncoding.int(5)


@pytest.mark.parametrize(
    "shape, kernel, stride, encodings",
    [
        ((4, 6, 3), 2, None, (TERNARY, BINARY, UINT3, INT5)),
        ((5, 7, 2), 2, None, (TERNARY, INT5)),  # last row and column dropped
        ((6, 6, 2), 3, None, (BINARY, UINT3)),
        ((3, 5, 1), (1, 2), None, (INT5,)),
        ((4, 4, 2), (2, 1), None, (TERNARY,)),
        ((1, 1, 3), 1, None, (UINT3,)),
        ((2, 1, 2), (2, 1), None, (BINARY, INT5)),  # one output column: read what was written
        ((5, 5, 2), 3, 2, (TERNARY, BINARY, UINT3, INT5)),  # overlapping windows
        ((6, 7, 2), 2, 3, (UINT3,)),  # gaps between windows
        ((4, 5, 1), (2, 3), (1, 2), (BINARY,)),
    ],
)
def test_random_images_with_stalls(shape, kernel, stride, encodings):
    for encoding in encodings:
        rng = np.random.default_rng([*shape, encoding.width])
        frames = random_values(rng, encoding, (2, *shape))
        check(frames, encoding, kernel, stride, max_delay=3, seed=shape[0])


@pytest.mark.parametrize("stride", [None, 1])
def test_latency_and_initiation_interval_match_properties(stride):
    rng = np.random.default_rng(5)
    h, w, c = 4, 6, 2
    frames = random_values(rng, ValueEncoding.int(4), (2, h, w, c))
    dut = MaxPool(
        encoding=ValueEncoding.int(4), height=h, width=w, channels=c, kernel=2, stride=stride
    )
    oh, ow = dut.output_shape
    pixels = [to_wire(ValueEncoding.int(4), p) for p in frames.reshape(-1, c)]
    in_cycles, out_cycles, out = timed(dut, pixels, 2 * oh * ow)
    got = np.array([list(p) for p in out]).reshape(2, oh * ow, c)
    sy = 2 if stride is None else 1
    for frame, pooled in zip(frames, got, strict=True):
        assert np.array_equal(pooled, ref_maxpool(frame, (2, 2), (sy, sy)))
    assert in_cycles[h * w] - in_cycles[0] == dut.initiation_interval
    assert np.diff(in_cycles).tolist() == [1] * (2 * h * w - 1)
    for oy, ox in ((0, 0), (1, 1), (oh - 1, ow - 1)):
        bottom_right = (oy * sy + 1) * w + ox * sy + 1
        assert out_cycles[oy * ow + ox] - in_cycles[bottom_right] == dut.latency


def test_properties():
    dut = MaxPool(encoding=TERNARY, height=7, width=5, channels=4, kernel=2)
    assert dut.output_shape == (3, 2)
    assert dut.initiation_interval == 35
    assert MaxPool(
        encoding=TERNARY, height=7, width=5, channels=4, kernel=3, stride=2
    ).output_shape == (3, 2)


def test_parameter_errors():
    ok = dict(encoding=TERNARY, height=4, width=4, channels=1, kernel=2)

    def check_error(exc, message, **change):
        with pytest.raises(exc, match="^" + message + "$"):
            MaxPool(**{**ok, **change})

    check_error(TypeError, r"Encoding must be a ValueEncoding, not None", encoding=None)
    check_error(ValueError, r"Height must be a positive integer, not 0", height=0)
    check_error(TypeError, r"Width must be a positive integer, not '4'", width="4")
    check_error(ValueError, r"Channel count must be a positive integer, not 0", channels=0)
    check_error(
        TypeError, r"Kernel must be a positive integer or a pair of them, not 2\.0", kernel=2.0
    )
    check_error(
        ValueError,
        r"Stride must be a positive integer or a pair of them, not \(0, 2\)",
        stride=(0, 2),
    )
    check_error(ValueError, r"Kernel \(5, 5\) is larger than the image \(4, 4\)", kernel=5)
