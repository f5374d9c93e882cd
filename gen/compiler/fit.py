"""Fitting a part: the resource model in each target family's units, and the part's budget.

:mod:`gen.compiler.cost` predicts iCE40 LUT4s, carry cells and flip-flops and leaves the folded
engines' ROMs as bits. Here a plan's prediction becomes a target family's figures:

- **ROMs placed** as ``--rom`` asks (:func:`rom_placement`): ``block`` puts every ROM in block
  RAM (iCE40 EBR, ECP5 DP16KD, Xilinx RAMB36), counted from the ROM's depth and width and the
  primitive's aspect ratios (:func:`block_count`); ``logic`` makes it LUTs (a LUT per output bit
  per 16 words, or 64 on Xilinx's LUT6, and a multiplexer tree above); ``lut`` is Xilinx
  distributed RAM, logic elsewhere; ``auto`` is what Yosys 0.23 does with no attribute: small
  and shallow ROMs in logic, the others in block RAM (:func:`rom_placement`).
- **Family scale**: LUTs and flip-flops times :data:`FAMILY_SCALE`, fitted to synthesis of the
  designs of ``bench/cost_fit.py`` (Yosys 0.23, synthesis only) where a scale helps.
- **Multipliers**: a folded engine built with ``multiply="dsp"`` takes a multiplier block per
  PE and SIMD lane where the family's synthesis maps its products (:func:`multiplier_maps`),
  else its products are logic and are counted as the AND arrays they are as wide as.

:func:`budget` is a part's capacity times a utilization bound, and :func:`fits` compares a
prediction with it: what ``--part`` folds a network to fill.
"""

import math
from dataclasses import dataclass

from hw.folded import weight_bits
from hw.products import can_multiply, product_width
from hw.roms import block_read as roms_block_read

from ..flow.targets import TARGETS, get_target
from .folds import CompileError

__all__ = [
    "FAMILY_SCALE",
    "ICE40_UNPAIRED_FF",
    "AUTO_BLOCK_DEPTH",
    "DEFAULT_UTILIZATION",
    "PartResources",
    "roms",
    "block_count",
    "block_width",
    "rom_luts",
    "rom_placement",
    "predict",
    "layer_terms",
    "scale_terms",
    "plan_terms",
    "predict_layer",
    "output_resources",
    "budget",
    "fits",
    "describe",
    "part_family",
    "wrapper",
    "multiplier_maps",
    "MULTIPLIER_MIN_BITS",
]

#: Measured / predicted (iCE40 units) per family, after the ROMs are placed: bench/cost_fit.py's
#: eleven designs (Yosys 0.23, synthesis only; ECP5 in LUT4 sites, a CCU2C counting two). Run of
#: 2026-12-04 with the register slices, the argmax and the stream conversions in the model and
#: the folded engines on credits: iCE40 11 of 11 within 25% unscaled (LUTs 0.77-1.05, flip-flops
#: 0.86-1.02), Xilinx 11 of 11 (0.77-1.08, 0.84-1.01); ECP5 unscaled 1.07-1.76 (3 of 11), so it
#: takes a scale for the folded engines' LUTs and one for the rest (least squares 1.20 and 1.34;
#: 1.25 and 1.38 keep the largest deviation smallest): 0.86-1.21, flip-flops 0.84-1.02, 11 of 11.
FAMILY_SCALE = {
    "ice40": {"luts": 1.0, "carry": 0.0, "ffs": 1.0},
    "ecp5": {"luts": 1.25, "folded": 1.38, "carry": 0.0, "ffs": 1.0},
    "xilinx": {"luts": 0.745, "carry": 0.0, "ffs": 1.024},
}
#: Without a ``rom_style``, Yosys 0.23 puts a ROM in block RAM when it is deeper than this many
#: words and holds at least AUTO_BLOCK_BITS bits, or (ECP5) holds more than AUTO_LARGE_BITS
#: bits at any depth: the rule that reproduces every placement of bench/cost_fit.py's designs
#: (a 64 x 784 ROM goes to DP16KDs on ECP5, to logic on iCE40 and Xilinx; a 160 x 4 one to
#: logic; a 256 x 16 one to an EBR on iCE40 and ECP5, to logic on Xilinx; 256 x 196 to block
#: RAM everywhere).
AUTO_BLOCK_DEPTH = 64
AUTO_BLOCK_BITS = {"ice40": 1024, "ecp5": 1024, "xilinx": 4097}
AUTO_LARGE_BITS = {"ice40": None, "ecp5": 16384, "xilinx": None}
#: Fraction of the part's LUTs, flip-flops and block RAMs that ``--part`` fills at most.
DEFAULT_UTILIZATION = 0.8

#: The narrowest product (result bits) that Yosys 0.23 maps to the family's multiplier block
#: (its mul2dsp ``DSP_Y_MINWIDTH``), measured on folded int5 to int8 by uint4 engines:
#: ``synth_ice40 -dsp`` made SB_MAC16s of 11-bit products, not of 10-bit ones; ``synth_xilinx``
#: DSP48E1s of 9-bit products, not of 8-bit ones; ``synth_ecp5`` MULT18X18Ds of all of them.
MULTIPLIER_MIN_BITS = {"ice40": 11, "ecp5": 2, "xilinx": 9}

#: (depth, width) configurations of each family's block RAM primitive used as a ROM.
BLOCK_SHAPES = {
    "ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),  # SB_RAM40_4K
    "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),  # DP16KD
    # RAMB36E1, which Yosys prefers to RAMB18E1 for ROMs
    "xilinx": ((512, 72), (1024, 36), (2048, 18), (4096, 9), (8192, 4), (16384, 2), (32768, 1)),
}
#: Words a LUT reads as one output bit: LUT4 (iCE40, ECP5) or LUT6 (Xilinx).
LUT_WORDS = {"ice40": 16, "ecp5": 16, "xilinx": 64}
#: Words one LUT of distributed RAM holds per bit (Xilinx RAM64X1S).
LUTRAM_WORDS = {"xilinx": 64}


#: iCE40 logic cells hold a LUT4 and a flip-flop; a flip-flop that its own LUT does not feed
#: takes a cell of its own. Logic cells = LUT4s + this fraction of the flip-flops, as nextpnr
#: 0.4 packed (wrappers included) digits-mlp unrolled (2,937 LUT4s, 1,401 flip-flops: 3,755
#: cells, 0.58), digits-bfcn unrolled (4,026, 3,389: 5,761, 0.51) and digits-bfcn at
#: ``0:unrolled;2:11,9`` (3,065, 3,664: 5,559, 0.68).
ICE40_UNPAIRED_FF = 0.6
#: The pin wrapper (hw.pins) around the accelerator on a part: a register per bit of the input
#: and output vectors it assembles and splits, and a quarter of a LUT per such bit (measured:
#: digits-bfcn 688 flip-flops and 177 LUT4s for 640 bits, digits-mlp 295 and 44 for 260).
WRAPPER_FF_EXTRA = 32
WRAPPER_LUT_PER_BIT = 0.25


@dataclass(frozen=True)
class PartResources:
    """A prediction in one family's units: LUTs (LUT4, or LUT6 on Xilinx), flip-flops, block
    RAM primitives, multiplier blocks (``dsp``), and ``cells``, the logic cells that LUTs and
    flip-flops pack into (iCE40: :data:`ICE40_UNPAIRED_FF`; elsewhere each figure has sites of
    its own and ``cells`` is the LUTs). ``cells`` left out is ``luts``."""

    luts: int = 0
    ffs: int = 0
    bram: int = 0
    cells: int = None
    dsp: int = 0

    def __post_init__(self):
        if self.cells is None:
            object.__setattr__(self, "cells", self.luts)

    def __add__(self, other):
        return PartResources(
            self.luts + other.luts,
            self.ffs + other.ffs,
            self.bram + other.bram,
            self.cells + other.cells,
            self.dsp + other.dsp,
        )

    def asdict(self):
        return {
            "luts": self.luts,
            "ffs": self.ffs,
            "bram": self.bram,
            "cells": self.cells,
            "dsp": self.dsp,
        }


def roms(net, layer_plan, ranges):
    """The ROMs of a folded engine as ``[(depth, width), ...]``: its weight tiles, and its
    thresholds when it has more than one row fold (:class:`hw.folded.FoldedMatrixVector`)."""
    if layer_plan.engine != "folded":
        return []
    layer = net.layers[layer_plan.index]
    rows, cols = layer.weights.shape
    pe, simd = layer_plan.pe, layer_plan.simd
    row_folds, col_folds = rows // pe, cols // simd
    found = [(row_folds * col_folds, pe * simd * weight_bits(layer.weight_type))]
    if layer.activation is not None and row_folds > 1:
        n_thr = len(layer.activation.levels) - 1
        acc = ranges[layer_plan.index]
        found.append((row_folds, pe * n_thr * (acc.acc_bits + (0 if acc.acc_signed else 1))))
    return found


def block_width(depth, family):
    """The widest word a block RAM primitive of ``family`` holds at ``depth`` words (one
    primitive's share of a wide ROM), or 0 if none is that deep."""
    return max((w for d, w in BLOCK_SHAPES[family] if d >= depth), default=0)


def block_count(depth, width, family):
    """Block RAM primitives of ``family`` that hold a ROM of ``depth`` words of ``width`` bits:
    the best of the primitive's aspect ratios, as Yosys's memory mapping chooses."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BLOCK_SHAPES[family])


def rom_luts(depth, width, family):
    """LUTs of a ROM built as logic: per output bit, a LUT per :data:`LUT_WORDS` words and a
    tree of 4:1 (LUT4) or 8:1 (LUT6, with its F7/F8 multiplexers) selects above them. A ROM of
    one word is constants; one of two words, a wire or an inverter of the address bit."""
    if depth <= 2:
        return 0
    leaves = math.ceil(depth / LUT_WORDS[family])
    tree = 0
    fan = 4 if LUT_WORDS[family] == 16 else 8
    level = leaves
    while level > 1:
        level = math.ceil(level / fan)
        tree += level * (2 if fan == 4 else 1)
    return width * (leaves + tree)


def rom_placement(depth, width, rom, family):
    """Where a ROM of ``depth`` words of ``width`` bits goes for ``--rom`` ``rom``: ``block``,
    ``lut`` or ``logic``."""
    if rom == "auto":
        bits = depth * width
        deep = depth > AUTO_BLOCK_DEPTH
        large = AUTO_LARGE_BITS[family] is not None and bits > AUTO_LARGE_BITS[family]
        return "block" if (deep and bits >= AUTO_BLOCK_BITS[family]) or large else "logic"
    if rom == "lut" and family not in LUTRAM_WORDS:
        return "logic"
    return rom


def multiplier_maps(family, input_encoding, weight_type):
    """Whether ``family``'s synthesis maps an engine's ``multiply="dsp"`` products (inputs of
    ``input_encoding`` times ``weight_type`` weights) to multiplier blocks
    (:data:`MULTIPLIER_MIN_BITS`)."""
    if family not in MULTIPLIER_MIN_BITS or not can_multiply(input_encoding, weight_type):
        return False
    return product_width(input_encoding, weight_type) >= MULTIPLIER_MIN_BITS[family]


def layer_terms(net, layer_plan, ranges, family, rom="auto"):
    """One layer's unscaled figures for ``family``: the resource model's ``luts``, ``carry``
    and ``ffs`` (iCE40 units), ``rom_luts`` (its ROMs built as logic or LUT RAM, in the
    family's LUTs), ``bram`` (block RAM primitives) and ``dsp`` (multiplier blocks)."""
    from .estimate import layer_estimate, layer_input_encoding, value_bits

    base, dsp = layer_plan.predicted, 0
    if layer_plan.multiply == "dsp":
        weight_type = net.layers[layer_plan.index].weight_type
        if multiplier_maps(family, layer_input_encoding(net, layer_plan.index), weight_type):
            dsp = layer_plan.pe * layer_plan.simd
        else:  # the products stay logic: as many LUTs as the AND arrays
            base = layer_estimate(net, layer_plan, ranges, multiply="logic")
    rom_l, bram = 0, 0
    block_bits = layer_plan.block_bits
    ffs = base.ffs
    block_read = layer_plan.engine == "folded" and roms_block_read(rom, block_bits)
    if block_read:
        # hw.folded registers block RAM read data once more (below, per ROM), with its input
        # slice and control
        ffs += layer_plan.simd * value_bits(net.types[layer_plan.index]) + 8
    for k, (depth, width) in enumerate(roms(net, layer_plan, ranges)):
        if k == 0 and block_bits is not None:
            # the weight ROM split: its low block_bits in block RAM, the rest in logic
            if block_bits:
                bram += block_count(depth, block_bits, family)
            rom_l += rom_luts(depth, width - block_bits, family) if width > block_bits else 0
            in_block = block_bits
        else:
            where = rom_placement(depth, width, rom, family)
            if where == "block":
                bram += block_count(depth, width, family)
            elif where == "lut":
                rom_l += width * math.ceil(depth / LUTRAM_WORDS[family])
            else:
                rom_l += rom_luts(depth, width, family)
            in_block = width if where == "block" else 0
        if block_read:
            # on ECP5 the bits read from DP16KDs are registered inside them (gen.flow.outreg)
            ffs += width - (in_block if family == "ecp5" else 0)
    return {
        "luts": base.luts,
        "folded_luts": base.luts if layer_plan.engine == "folded" else 0,
        "carry": base.carry,
        "ffs": ffs,
        "rom_luts": rom_l,
        "bram": bram,
        "dsp": dsp,
    }


def scale_terms(terms, family, *, scaled=True):
    """:func:`layer_terms` (or their sum) as a :class:`PartResources`: LUTs are
    ``luts * LUT-scale + carry * carry-scale + rom_luts``, the folded engines' share of ``luts``
    at the family's ``folded`` scale where it has one; flip-flops ``ffs * FF-scale``
    (:data:`FAMILY_SCALE`; unscaled: LUTs plus ROM LUTs, as iCE40 counts them)."""
    k = FAMILY_SCALE[family] if scaled else {"luts": 1.0, "carry": 0.0, "ffs": 1.0}
    folded = terms.get("folded_luts", 0)
    luts = (terms["luts"] - folded) * k["luts"] + folded * k.get("folded", k["luts"])
    luts += terms["carry"] * k["carry"] + terms["rom_luts"]
    ffs = terms["ffs"] * k["ffs"]
    cells = luts + ICE40_UNPAIRED_FF * ffs if family == "ice40" else luts
    return PartResources(round(luts), round(ffs), terms["bram"], round(cells), terms["dsp"])


def output_resources(resources, family, *, scaled=True):
    """The final argmax's :class:`gen.compiler.cost.Resources` in ``family``'s units."""
    terms = {"luts": resources.luts, "carry": resources.carry, "ffs": resources.ffs}
    terms.update(rom_luts=0, bram=0, dsp=0)
    return scale_terms(terms, family, scaled=scaled)


def predict_layer(net, layer_plan, ranges, family, rom="auto", *, scaled=True):
    """One layer's :class:`PartResources` in ``family``'s units."""
    return scale_terms(layer_terms(net, layer_plan, ranges, family, rom), family, scaled=scaled)


def plan_terms(the_plan, family, *, rom=None):
    """:func:`layer_terms` summed over a plan's layers (``rom``: the plan's own unless given)."""
    from ..network.ranges import analyze_ranges

    rom = rom or the_plan.options.get("rom", "auto")
    ranges = analyze_ranges(the_plan.net)
    total = dict.fromkeys(("luts", "folded_luts", "carry", "ffs", "rom_luts", "bram", "dsp"), 0)
    output = the_plan.output_predicted  # the final argmax: logic and registers only
    total.update(luts=output.luts, carry=output.carry, ffs=output.ffs)
    for layer_plan in the_plan.layers:
        for key, value in layer_terms(the_plan.net, layer_plan, ranges, family, rom).items():
            total[key] += value
    return total


def predict(the_plan, family, *, scaled=True, rom=None):
    """A whole :class:`gen.compiler.plan.Plan`'s :class:`PartResources` in ``family``'s units
    (``rom``: the plan's own ``--rom`` unless given)."""
    return scale_terms(plan_terms(the_plan, family, rom=rom), family, scaled=scaled)


def wrapper(net, family):
    """The pin wrapper's :class:`PartResources` for ``net`` (:data:`WRAPPER_LUT_PER_BIT`): what
    a part holds beside the accelerator."""
    from .estimate import value_bits

    bits_in = math.prod(net.shapes[0]) * value_bits(net.types[0])
    out_shape = net.shapes[-1]
    index_bits = max(1, (out_shape[-1] - 1).bit_length())
    if net.output == "argmax":
        bits_out = index_bits
    elif net.output == "class_map":
        bits_out = math.prod(out_shape[:-1]) * index_bits
    else:
        bits_out = math.prod(out_shape) * value_bits(net.types[-1])
    bits = bits_in + bits_out
    luts, ffs = WRAPPER_LUT_PER_BIT * bits, bits + WRAPPER_FF_EXTRA
    cells = luts + ICE40_UNPAIRED_FF * ffs if family == "ice40" else luts
    return PartResources(round(luts), round(ffs), 0, round(cells))


def part_family(part):
    """The family of the synthesis target named ``part``; raises CompileError for a target
    that is not a part (no capacity) or an unknown name."""
    try:
        target = get_target(part)
    except Exception as exc:  # SynthInputError: its message names the choices
        raise CompileError(str(exc)) from None
    if not target.capacity or target.family not in FAMILY_SCALE:
        parts = [name for name, t in TARGETS.items() if t.capacity]
        raise CompileError(
            f"--part takes a part with known resources ({', '.join(parts)}), not {part!r}"
        )
    return target.family


def budget(part, utilization=DEFAULT_UTILIZATION):
    """The part's LUTs, flip-flops, block RAMs and multiplier blocks times ``utilization``: a
    :class:`PartResources` that a plan for ``part`` must fit."""
    if not 0 < utilization <= 1:
        raise CompileError(f"utilization must be above 0 and at most 1, not {utilization}")
    part_family(part)
    capacity = get_target(part).capacity
    return PartResources(
        int(capacity["luts"] * utilization),
        int(capacity["ffs"] * utilization),
        int(capacity.get("bram", 0) * utilization),
        dsp=int(capacity.get("dsp", 0) * utilization),
    )


def describe(resources):
    """``"4,026 LUTs (5,761 logic cells), 3,389 flip-flops, 7 block RAMs"`` (and ``", 8
    DSPs"`` where there are any)."""
    cells = f" ({resources.cells:,} logic cells)" if resources.cells != resources.luts else ""
    dsp = f", {resources.dsp} DSP{'s' if resources.dsp != 1 else ''}" if resources.dsp else ""
    return (
        f"{resources.luts:,} LUTs{cells}, {resources.ffs:,} flip-flops, "
        f"{resources.bram} block RAMs{dsp}"
    )


def fits(prediction, limit):
    """Whether a :class:`PartResources` ``prediction`` is within ``limit`` in every figure
    (logic cells included)."""
    return (
        prediction.luts <= limit.luts
        and prediction.ffs <= limit.ffs
        and prediction.bram <= limit.bram
        and prediction.cells <= limit.cells
        and prediction.dsp <= limit.dsp
    )
