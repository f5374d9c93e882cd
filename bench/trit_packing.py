"""When does compressed trit storage pay? Five ternary weights in 8 bits, measured.

Ternary weights take 2 bits in the folded engines' ROMs. Five of them have 3**5 = 243 values,
which fit 8 bits (1.6 bits a weight, as Prost-Boucle et al., TRETS 2018, store them), so a block
RAM would hold 25% more weights. Reading them back takes a decoder: each of its 10 output bits
is a function of all 8 stored bits. This script builds that decoder for ``--groups`` groups
(checks it exhaustively in Amaranth's simulator against an arithmetic reference), synthesizes
it with Yosys for iCE40, ECP5 and Xilinx, and prints:

- the decoder's LUTs per weight read per cycle;
- per block RAM shape, the weights a primitive delivers per cycle with 2-bit and with packed
  storage (a packed word holds whole groups, and a last group of k < 5 weights in
  ``ceil(k log2 3)`` bits);
- the ROM depth above which a packed block RAM lane (its decoder) costs fewer LUTs than
  keeping that lane's weights as a ROM in logic (:func:`gen.compiler.fit.rom_luts`), the
  alternative once the part's block RAMs are full.

Usage::

    python -m bench.trit_packing [--groups N]
"""

import argparse
import itertools
import sys

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bench.area_synth import synth_counts
from gen.compiler import fit
from hw.roms import pack

GROUP = 5  # weights per packed group
GROUP_BITS = 8  # ceil(5 log2 3)


def group_bits(count):
    """Bits of a packed group of ``count`` ternary weights."""
    return (3**count - 1).bit_length()


def encode(trits):
    """The packed code of a group: sum of (t_k + 1) * 3**k."""
    return sum((t + 1) * 3**k for k, t in enumerate(trits))


def decode(code, count=GROUP):
    """The group's weights, by division: the decoder's case table."""
    return [(code // 3**k) % 3 - 1 for k in range(count)]


class TritDecoder(wiring.Component):
    """``groups`` packed groups in, their ``5 * groups`` weights out (2 bits each, two's
    complement), through one case table per group."""

    def __init__(self, groups):
        self._groups = groups
        super().__init__({"i": In(GROUP_BITS * groups), "o": Out(2 * GROUP * groups)})

    def elaborate(self, platform):
        m = Module()
        for g in range(self._groups):
            code = self.i[GROUP_BITS * g : GROUP_BITS * (g + 1)]
            out = self.o[2 * GROUP * g : 2 * GROUP * (g + 1)]
            with m.Switch(code):
                for value in range(3**GROUP):
                    with m.Case(value):
                        m.d.comb += out.eq(pack(decode(value), 2))
        return m


def check(groups):
    """Every group of five weights, packed by :func:`encode`, decodes back to itself."""
    dut = TritDecoder(groups)
    failures = []

    async def bench(ctx):
        for trits in itertools.product((-1, 0, 1), repeat=GROUP):
            code = encode(trits)
            ctx.set(dut.i, sum(code << (GROUP_BITS * g) for g in range(groups)))
            got = ctx.get(dut.o)
            for g in range(groups):
                for k in range(GROUP):
                    bits = (got >> (2 * (GROUP * g + k))) & 3
                    trit = bits - 4 if bits & 2 else bits
                    if trit != trits[k]:
                        failures.append((code, g, k))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    if failures:
        raise SystemExit(f"decoder wrong for {len(failures)} (code, group, weight): {failures[:5]}")


def packed_weights(width):
    """Weights a ``width``-bit word holds packed: whole groups, then a partial group."""
    full, rest = divmod(width, GROUP_BITS)
    partial = max((k for k in range(GROUP) if group_bits(k) <= rest), default=0)
    return full * GROUP + partial


def break_even_depth(decoder_luts_per_weight, family):
    """The smallest power-of-two depth at which a weight lane kept as a logic ROM (2 bits,
    :func:`gen.compiler.fit.rom_luts`) costs more LUTs than the packed lane's decoder."""
    depth = 4
    while fit.rom_luts(depth, 2, family) <= decoder_luts_per_weight:
        depth *= 2
        if depth > 1 << 20:
            return None
    return depth


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--groups", type=int, default=4, help="groups decoded (default: 4)")
    args = parser.parse_args(argv)
    if args.groups < 1:
        parser.error(f"--groups must be a positive integer, not {args.groups}")
    check(args.groups)
    print(
        f"decoder of {args.groups} groups ({GROUP * args.groups} weights): exact on all "
        f"{3**GROUP} codes"
    )
    text = verilog.convert(TritDecoder(args.groups), name="trit_decoder", emit_src=False)
    weights = GROUP * args.groups
    print("\n| family | decoder LUTs | LUTs per weight | logic ROM beats it below depth |")
    print("|:--|--:|--:|--:|")
    per_weight = {}
    for target, family in (("ice40", "ice40"), ("ecp5", "ecp5"), ("xilinx", "xilinx")):
        counts = synth_counts(text, "trit_decoder", target)
        per_weight[family] = counts["luts"] / weights
        depth = break_even_depth(per_weight[family], family)
        print(f"| {family} | {counts['luts']:,} | {per_weight[family]:.1f} | {depth} |")
    print("\n| family | block RAM shape | weights per cycle, 2-bit | packed | gain |")
    print("|:--|:--|--:|--:|--:|")
    for family, shapes in fit.BLOCK_SHAPES.items():
        for depth, width in shapes:
            plain, packed = width // 2, packed_weights(width)
            if plain == 0 and packed == 0:
                continue
            gain = f"{packed / plain:.2f}x" if plain else "-"
            print(f"| {family} | {depth} x {width} | {plain} | {packed} | {gain} |")
    print(
        "\nA packed lane saves block RAM only where the primitive's gain is above 1x, and costs"
        " its decoder's LUTs per weight read each cycle; it beats spilling the weights to a logic"
        " ROM only at or above the break-even depth (iCE40 and ECP5 LUT4s; Xilinx LUT6s)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
