"""The folded engines' ROMs: their words, and where synthesis is told to put them.

A folded engine (:mod:`hw.folded`) reads one weight word per cycle, the ``pe x simd`` tile of
a (row fold, column fold) step, and one threshold word per row fold. This module packs those
words and builds the ``lib.memory.Memory`` ROMs with synchronous read ports, marked with the
``rom_style`` attribute Yosys's memory mapping reads: block RAM, LUT RAM, logic, or the
synthesizer's choice. A wide, shallow weight ROM can be split by its word's bits into a block
RAM part and a logic part read at the same address, for parts whose block RAMs hold only some
of its bits at the read width it needs.
"""

import numpy as np
from amaranth.hdl import Cat, Signal, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from hw.products import weight_bits

__all__ = [
    "ROM_STYLES",
    "block_read",
    "check_block_bits",
    "check_rom_style",
    "pack",
    "read_rom",
    "read_threshold_table",
    "threshold_words",
    "weight_words",
]

#: Where the ROMs go: the synthesizer's choice (None), block RAM, LUT RAM, or plain logic; the
#: value of the ``rom_style`` attribute Yosys's memory mapping reads.
ROM_STYLES = (None, "block", "distributed", "logic")


def block_read(rom_style, block_bits):
    """Whether a folded engine's ROMs are read from block RAM (``rom_style="block"``, or a
    weight ROM split with ``block_bits``): the engine then registers the read data once more,
    beside the block (``hw.folded``), and a cycle of latency more."""
    return rom_style == "block" or bool(block_bits)


def check_block_bits(block_bits, word):
    """``block_bits`` itself: None (no split) or the bits, 0 to ``word``, of a weight word that
    go to block RAM."""
    if block_bits is not None and (
        not isinstance(block_bits, int)
        or isinstance(block_bits, bool)
        or not 0 <= block_bits <= word
    ):
        raise ValueError(
            f"Block bits must be an integer from 0 to the weight word's {word} bits, not "
            f"{block_bits!r}"
        )
    return block_bits


def check_rom_style(rom_style):
    """``rom_style`` itself, if it is one of :data:`ROM_STYLES`."""
    if rom_style not in ROM_STYLES:
        raise ValueError(
            f"ROM style must be one of {', '.join(map(repr, ROM_STYLES))}, not {rom_style!r}"
        )
    return rom_style


def pack(values, width):
    """One integer holding ``values`` (two's complement, ``width`` bits each, element 0 lowest)."""
    word = 0
    mask = (1 << width) - 1
    for k, value in enumerate(values):
        word |= (int(value) & mask) << (k * width)
    return word


def weight_words(weights, weight_type, pe, simd):
    """The weight ROM's words: word ``nf * col_folds + sf`` is the tile of row fold ``nf`` and
    column fold ``sf``, holding ``weights[nf*pe + p, sf*simd + s]`` at element ``p*simd + s``.

    Ternary weights take 2 bits (the two's complement of -1, 0, +1), binary 1 (1 = +1), intN
    their N bits.
    """
    rows, cols = weights.shape
    width = weight_bits(weight_type)
    if weight_type == "binary":
        bits = (weights > 0).astype(np.int64)
    else:
        bits = weights & ((1 << width) - 1)
    tiles = bits.reshape(rows // pe, pe, cols // simd, simd).transpose(0, 2, 1, 3)
    return [pack(tile.ravel().tolist(), width) for tile in tiles.reshape(-1, pe * simd)]


def threshold_words(thresholds, pe, width):
    """The threshold ROM's words: word ``nf`` holds the thresholds of rows ``nf*pe`` to
    ``nf*pe + pe - 1``, ``width`` bits each, row by row."""
    rows = thresholds.shape[0]
    return [
        pack(thresholds[nf * pe : (nf + 1) * pe].ravel().tolist(), width)
        for nf in range(rows // pe)
    ]


def read_rom(m, name, words, width, addr, enable, *, rom_style=None, block_bits=None):
    """A ROM of ``words`` (``width`` bits each) read at ``addr`` while ``enable``: its word,
    one cycle later.

    ``rom_style`` (:data:`ROM_STYLES`) places the whole ROM. With ``block_bits`` the word's low
    ``block_bits`` go to a ROM marked for block RAM and the others to one marked for logic
    (``name`` and ``name + "_block"``), both read at ``addr``; 0 or ``width`` keeps one ROM,
    marked for logic or block RAM.
    """
    if block_bits is None:
        parts = [(width, words, rom_style, name)]
    elif block_bits in (0, width):
        parts = [(width, words, "block" if block_bits else "logic", name)]
    else:
        low = (1 << block_bits) - 1
        parts = [
            (block_bits, [w & low for w in words], "block", f"{name}_block"),
            (width - block_bits, [w >> block_bits for w in words], "logic", name),
        ]
    data_parts = []
    for bits, init, style, part_name in parts:
        attrs = {} if style is None else {"rom_style": style}
        rom = Memory(shape=unsigned(bits), depth=len(init), init=init, attrs=attrs)
        m.submodules[part_name] = rom
        port = rom.read_port()
        m.d.comb += [port.addr.eq(addr), port.en.eq(enable)]
        data_parts.append(port.data)
    return Cat(*data_parts)


def read_threshold_table(m, thresholds, pe, shape, address, enable, *, rom_style, block_read):
    """A folded engine's thresholds of the row fold at ``address``: read from their ROM (one
    word per row fold, :func:`threshold_words`), registered while ``enable`` is 1, and viewed as
    ``pe`` rows of ``len(levels) - 1`` values of ``shape``. ``block_read``, if given, is the
    engine's register function for the block RAM's read data (``register(value, name, *,
    reset_less)``), applied before that register."""
    per_row = thresholds.shape[1]
    width = pe * per_row * shape.width
    word = read_rom(
        m,
        "threshold_rom",
        threshold_words(thresholds, pe, shape.width),
        width,
        address,
        enable,
        rom_style=rom_style,
    )
    if block_read is not None:
        word = block_read(word, "threshold_word", reset_less=True)
    t_bits = Signal(width)
    with m.If(enable):
        m.d.sync += t_bits.eq(word)
    return data.ArrayLayout(data.ArrayLayout(shape, per_row), pe)(t_bits)
