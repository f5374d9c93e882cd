# amaranth: UnusedElaboratable=no

import itertools

import numpy as np
import pytest
from streams import drive, from_wire, random_values, timed, to_wire

from hw.encoding import ValueEncoding
from hw.window import SlidingWindow

TERNARY = ValueEncoding.ternary()
BINARY = ValueEncoding.binary()


def ref_windows(image, kernel, stride, padding, pad_value):
    """Windows of an ``(h, w, c)`` image, row-major, each flattened in ``(ky, kx, c)`` order."""
    (kh, kw), (sy, sx), (py, px) = kernel, stride, padding
    padded = np.pad(image, ((py, py), (px, px), (0, 0)), constant_values=pad_value)
    oh = (padded.shape[0] - kh) // sy + 1
    ow = (padded.shape[1] - kw) // sx + 1
    return np.array(
        [
            padded[oy * sy : oy * sy + kh, ox * sx : ox * sx + kw].ravel()
            for oy in range(oh)
            for ox in range(ow)
        ]
    )


def rtl_windows(frames, encoding, *, max_delay=0, seed=0, **params):
    """Stream ``frames`` (``(n, h, w, c)``) through a SlidingWindow; windows per frame."""
    n, h, w, c = frames.shape
    dut = SlidingWindow(encoding=encoding, height=h, width=w, channels=c, **params)
    oh, ow = dut.output_shape
    pixels = [to_wire(encoding, p) for p in frames.reshape(-1, c)]
    out = drive(dut, pixels, n * oh * ow, seed=seed, max_delay=max_delay)
    return np.array([from_wire(encoding, p) for p in out]).reshape(n, oh * ow, -1)


def check(frames, encoding, *, kernel, stride=1, padding=0, pad_value=0, max_delay=2, seed=0):
    got = rtl_windows(
        frames,
        encoding,
        kernel=kernel,
        stride=stride,
        padding=padding,
        pad_value=pad_value,
        max_delay=max_delay,
        seed=seed,
    )

    def pair(v):
        return v if isinstance(v, tuple) else (v, v)

    for frame, windows in zip(frames, got, strict=True):
        expect = ref_windows(frame, pair(kernel), pair(stride), pair(padding), pad_value)
        assert np.array_equal(windows, expect)


def test_small_geometries_exhaustively():
    """Every image 1..3 x 1..3, kernel 1..3, stride 1..2, padding 0..1 that makes a window."""
    rng = np.random.default_rng(0)
    count = 0
    for h, w, k, s, p in itertools.product((1, 2, 3), (1, 2, 3), (1, 2, 3), (1, 2), (0, 1)):
        if k > h + 2 * p or k > w + 2 * p:
            continue
        frames = random_values(rng, TERNARY, (2, h, w, 1))
        check(frames, TERNARY, kernel=k, stride=s, padding=p, pad_value=-1, max_delay=1, seed=h)
        count += 1
    assert count > 60


@pytest.mark.parametrize(
    "encoding, pad_value",
    [
        (BINARY, -1),
        (BINARY, 1),
        (TERNARY, 0),
        (ValueEncoding.uint(3), 0),
        (ValueEncoding.int(4), -3),
    ],
)
def test_padding_values(encoding, pad_value):
    rng = np.random.default_rng(abs(pad_value) + encoding.width)
    frames = random_values(rng, encoding, (2, 4, 5, 2))
    check(frames, encoding, kernel=3, padding=1, pad_value=pad_value, seed=encoding.width)


@pytest.mark.parametrize(
    "kernel, stride, padding",
    [(3, 2, 1), (2, 2, 0), ((3, 2), (2, 1), (1, 0)), ((1, 3), 1, (0, 2)), (3, 3, 2), (2, 1, 0)],
)
def test_random_images_with_stalls(kernel, stride, padding):
    rng = np.random.default_rng(7)
    frames = random_values(rng, TERNARY, (3, 6, 7, 3))
    check(frames, TERNARY, kernel=kernel, stride=stride, padding=padding, max_delay=4, seed=5)


def test_wide_image_one_channel_kernel_covering_the_image():
    rng = np.random.default_rng(3)
    frames = random_values(rng, ValueEncoding.uint(4), (2, 3, 9, 1))
    check(frames, ValueEncoding.uint(4), kernel=3, stride=(1, 3))
    check(frames, ValueEncoding.uint(4), kernel=(3, 9))


@pytest.mark.parametrize("kernel, stride", [((2, 1), 1), ((3, 1), (2, 1))])
def test_single_column_image(kernel, stride):
    """One scan column: the line buffer reads the word it writes in the same cycle."""
    rng = np.random.default_rng(11)
    frames = random_values(rng, ValueEncoding.int(3), (3, 5, 1, 2))
    check(frames, ValueEncoding.int(3), kernel=kernel, stride=stride, max_delay=2)


def test_latency_and_initiation_interval_match_properties():
    rng = np.random.default_rng(1)
    h, w, c = 5, 4, 2
    frames = random_values(rng, TERNARY, (2, h, w, c))
    dut = SlidingWindow(
        encoding=TERNARY, height=h, width=w, channels=c, kernel=3, stride=2, padding=1
    )
    oh, ow = dut.output_shape
    pixels = [to_wire(TERNARY, p) for p in frames.reshape(-1, c)]
    in_cycles, out_cycles, out = timed(dut, pixels, 2 * oh * ow)
    got = np.array([from_wire(TERNARY, p) for p in out]).reshape(2, oh * ow, -1)
    for frame, windows in zip(frames, got, strict=True):
        assert np.array_equal(windows, ref_windows(frame, (3, 3), (2, 2), (1, 1), 0))
    # frames follow each other one initiation interval apart
    assert in_cycles[h * w] - in_cycles[0] == dut.initiation_interval
    assert out_cycles[oh * ow] - out_cycles[0] == dut.initiation_interval
    # window (oy, ox) ends on padded position (2 oy + 2, 2 ox + 2): real pixel (2 oy + 1, 2 ox + 1)
    for oy, ox in ((0, 0), (1, 1), (1, 0)):
        window_cycle = out_cycles[oy * ow + ox]
        assert window_cycle - in_cycles[(2 * oy + 1) * w + 2 * ox + 1] == dut.latency


def test_properties():
    dut = SlidingWindow(encoding=TERNARY, height=5, width=6, channels=3, kernel=(3, 2), stride=2)
    assert dut.output_shape == (2, 3)
    assert dut.window_size == 18
    assert dut.scan_shape == (5, 6)
    padded = SlidingWindow(
        encoding=TERNARY, height=5, width=6, channels=3, kernel=3, stride=2, padding=2
    )
    # padded 9 x 10: windows end on scan rows 2, 4, 6, 8 and columns 2, 4, 6, 8; the last
    # padding column (9) is never needed, so it is not scanned
    assert padded.output_shape == (4, 4)
    assert padded.scan_shape == (9, 9)
    assert padded.initiation_interval == 81


def test_parameter_errors():
    ok = dict(encoding=TERNARY, height=4, width=4, channels=1, kernel=3)

    def check_error(exc, message, **change):
        with pytest.raises(exc, match="^" + message + "$"):
            SlidingWindow(**{**ok, **change})

    check_error(TypeError, r"Encoding must be a ValueEncoding, not 'ternary'", encoding="ternary")
    check_error(ValueError, r"Height must be a positive integer, not 0", height=0)
    check_error(TypeError, r"Width must be a positive integer, not 4\.0", width=4.0)
    check_error(ValueError, r"Channel count must be a positive integer, not -2", channels=-2)
    check_error(
        TypeError,
        r"Kernel must be a positive integer or a pair of them, not \(3, 3, 3\)",
        kernel=(3, 3, 3),
    )
    check_error(ValueError, r"Kernel must be a positive integer or a pair of them, not 0", kernel=0)
    check_error(
        ValueError,
        r"Stride must be a positive integer or a pair of them, not \(1, 0\)",
        stride=(1, 0),
    )
    check_error(
        ValueError, r"Padding must be a non-negative integer or a pair of them, not -1", padding=-1
    )
    check_error(
        TypeError, r"Padding must be a non-negative integer or a pair of them, not '1'", padding="1"
    )
    check_error(
        ValueError,
        r"Pad value must be a valid binary value, not 0",
        encoding=BINARY,
        padding=1,
    )
    check_error(
        ValueError, r"Pad value must be a valid ternary value, not 2", padding=1, pad_value=2
    )
    check_error(TypeError, r"Pad value must be an integer, not 0\.5", pad_value=0.5)
    check_error(ValueError, r"Kernel \(5, 5\) is larger than the padded image \(4, 4\)", kernel=5)
    # binary input without padding needs no pad value
    SlidingWindow(**{**ok, "encoding": BINARY})
