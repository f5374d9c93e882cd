"""Class map: per position of a pixel stream, the index of its largest channel, gathered into
one vector (the ``class_map`` output of a fully convolutional network)."""

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hw.argmax import Argmax, check_stages
from hw.argmax import default_stages as argmax_stages
from hw.streamutil import PixelsToVector, check_encoding, check_positive_int

__all__ = ["ClassMap", "default_stages"]


def default_stages(channels):
    """Pipeline stages of the per-pixel argmax when none are chosen (as :mod:`hw.argmax`)."""
    return argmax_stages(channels)


class ClassMap(wiring.Component):
    """An :class:`~hw.argmax.Argmax` on every pixel, then a deserializer of the indices.

    Each transfer on ``i`` is one pixel (``channels`` values, the stream a convolution or a max
    pool emits, in raster order); its class index (ties to the lowest channel) leaves the
    argmax pipeline and is shifted into the map. After ``positions`` pixels the whole map is
    offered as one transfer, element ``y*w + x`` the class of pixel ``(y, x)``.

    Parameters
    ----------
    encoding : ValueEncoding
        Encoding of the channel values.
    channels : int
        Values per pixel (the number of classes).
    positions : int
        Pixels per frame (``h * w``).
    stages : int
        Pipeline registers of the argmax (see :class:`~hw.argmax.Argmax`).

    Members
    -------
    i : ``In(stream.Signature(encoding.layout(channels)))``
        One pixel per transfer.
    o : ``Out(stream.Signature(data.ArrayLayout(unsigned(b), positions)))``
        One map per transfer, ``b = max(1, ceil(log2(channels)))``.

    Attributes
    ----------
    latency : int
        ``stages + 1`` cycles from a frame's last pixel to its map.
    initiation_interval : int
        ``positions``: one pixel per cycle.
    """

    def __init__(self, *, encoding, channels, positions, stages):
        self._encoding = check_encoding(encoding)
        self._channels = check_positive_int(channels, "Channel count")
        self._positions = check_positive_int(positions, "Position count")
        levels = ceil_log2(self._channels)
        self._stages = check_stages(stages, self._channels, "channels")
        self._index_shape = unsigned(max(1, levels))
        super().__init__(
            {
                "i": In(stream.Signature(encoding.layout(channels))),
                "o": Out(stream.Signature(data.ArrayLayout(self._index_shape, positions))),
            }
        )

    @property
    def argmax_latency(self):
        """Cycles through the per-pixel argmax."""
        return self._stages

    @property
    def positions(self):
        return self._positions

    @property
    def index_shape(self):
        return self._index_shape

    @property
    def latency(self):
        return self._stages + 1  # the argmax, then the map's output register

    @property
    def initiation_interval(self):
        return self._positions

    def elaborate(self, platform):
        m = Module()
        m.submodules.argmax = argmax = Argmax(
            encoding=self._encoding, count=self._channels, stages=self._stages
        )
        m.submodules.gather = gather = PixelsToVector(
            shape=self._index_shape, pixels=self._positions, channels=1
        )
        wiring.connect(m, wiring.flipped(self.i), argmax.i)
        # the index is the deserializer's one-element pixel
        m.d.comb += [
            gather.i.valid.eq(argmax.o.valid),
            gather.i.payload.as_value().eq(argmax.o.payload),
            argmax.o.ready.eq(gather.i.ready),
        ]
        wiring.connect(m, gather.o, wiring.flipped(self.o))
        return m
