"""The folded engines' ROMs: their words, and where synthesis is told to put them.

A folded engine (:mod:`hw.folded`) reads one weight word per cycle, the ``pe x simd`` tile of
a (row fold, column fold) step, and one threshold word per row fold. This module packs those
words and builds the ``lib.memory.Memory`` ROMs with synchronous read ports, marked with the
``rom_style`` attribute Yosys's memory mapping reads: block RAM, LUT RAM, logic, or the
synthesizer's choice. A wide, shallow weight ROM can be split by its word's bits into a block
RAM part and a logic part read at the same address, for parts whose block RAMs hold only some
of its bits at the read width it needs.

A wide weight word is read in chunks of at most :data:`CHUNK_BITS` bits, each its own ROM at
its own copy of the address: one address register feeding a whole layer's ROM (thousands of
LUT inputs when the ROM is logic) was one net spanning the layer.
"""

import numpy as np
from amaranth.hdl import Cat, Signal, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from hw.products import weight_bits

__all__ = [
    "CHUNK_BITS",
    "ROM_STYLES",
    "address_copies",
    "block_read",
    "chunks",
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

#: The most bits of a weight word read at one copy of its address: four 36-bit block RAM read
#: ports (ECP5 DP16KD, Xilinx RAMB36 at depth <= 512), so that a block RAM part keeps the
#: blocks it would take whole; a logic part then has each address bit on about 4 x 144 LUT
#: inputs instead of 4 per bit of the word.
CHUNK_BITS = 144


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


def read_rom(
    m, name, words, width, addr, enable, *, rom_style=None, block_bits=None, chunk_bits=CHUNK_BITS
):
    """A ROM of ``words`` (``width`` bits each) read at ``addr`` while ``enable``: its word,
    one cycle later.

    ``rom_style`` (:data:`ROM_STYLES`) places the whole ROM. With ``block_bits`` the word's low
    ``block_bits`` go to a ROM marked for block RAM and the others to one marked for logic
    (``name + "_block"`` and ``name``), both read at ``addr``; 0 or ``width`` keeps one ROM,
    marked for logic or block RAM. ``addr`` is one address, or a list of equal addresses, one
    per chunk of ``chunk_bits`` (:func:`chunks`, :func:`address_copies`): each chunk is then its
    own ROM (``_0``, ``_1``, ... after the name) read at its own copy.
    """
    addrs = addr if isinstance(addr, (list, tuple)) else [addr]
    pieces = chunks(width, rom_style, block_bits, chunk_bits=chunk_bits if len(addrs) > 1 else None)
    if len(addrs) not in (1, len(pieces)):
        raise ValueError(f"Give one address or one per chunk ({len(pieces)}), not {len(addrs)}")
    data_parts = []
    for k, (offset, bits, style, part) in enumerate(pieces):
        init = [(w >> offset) & ((1 << bits) - 1) for w in words]
        attrs = {} if style is None else {"rom_style": style}
        rom = Memory(shape=unsigned(bits), depth=len(init), init=init, attrs=attrs)
        part_name = name + ("_block" if part == "block" else "")
        part_name += f"_{k}" if len(addrs) > 1 else ""
        m.submodules[part_name] = rom
        port = rom.read_port()
        m.d.comb += [port.addr.eq(addrs[k] if len(addrs) > 1 else addrs[0]), port.en.eq(enable)]
        data_parts.append(port.data)
    return Cat(*data_parts)


def chunks(width, rom_style=None, block_bits=None, *, chunk_bits=CHUNK_BITS):
    """The ROMs a word of ``width`` bits is read from, low bits first, as ``(offset, bits,
    rom_style, part)``: its block RAM part (``part`` ``"block"``) and its logic part when
    ``block_bits`` splits it (:func:`read_rom`), else one part (``"whole"``), each cut into
    pieces of at most ``chunk_bits`` bits (None: uncut)."""
    if block_bits is None:
        parts = [(0, width, rom_style, "whole")]
    elif block_bits in (0, width):
        parts = [(0, width, "block" if block_bits else "logic", "whole")]
    else:
        parts = [
            (0, block_bits, "block", "block"),
            (block_bits, width - block_bits, "logic", "logic"),
        ]
    step = chunk_bits or width
    return [
        (offset + start, min(step, bits - start), style, part)
        for offset, bits, style, part in parts
        for start in range(0, bits, step)
    ]


def address_copies(width, depth, rom_style=None, block_bits=None, *, chunk_bits=CHUNK_BITS):
    """How many copies of its address a ROM of ``depth`` words of ``width`` bits is read at
    (:func:`read_rom`): one per chunk, or one for a single word (its address is constant)."""
    if depth == 1:
        return 1
    return len(chunks(width, rom_style, block_bits, chunk_bits=chunk_bits))


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
