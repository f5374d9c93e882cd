"""Fitting a part: ROM placement and counts per family, budgets, and ``--part`` planning."""

import dataclasses
import importlib
import itertools
import json
import os

import numpy as np
import pytest
from netgen import mlp, split_utilization

from gen import cli, compiler, network
from gen.compiler import CompileError, fit
from gen.network.ranges import analyze_ranges

plan_module = importlib.import_module("gen.compiler.plan")
estimate = importlib.import_module("gen.compiler.estimate")
MODELS = os.path.join(os.path.dirname(__file__), os.pardir, "models")


# --- block RAM counts and ROMs in logic, worked by hand -------------------------------------------


def test_block_count_takes_the_best_aspect_ratio():
    # iCE40 EBR (4 Kbit): 64 x 784 in 256 x 16 -> 49 blocks (512 x 8 would take 98)
    assert fit.block_count(64, 784, "ice40") == 49
    # 2048 x 2 is one EBR; 2049 x 2 two
    assert fit.block_count(2048, 2, "ice40") == 1
    assert fit.block_count(2049, 2, "ice40") == 2
    # ECP5 DP16KD: 64 x 784 in 512 x 36 -> 22; 1024 x 18 one block
    assert fit.block_count(64, 784, "ecp5") == 22
    assert fit.block_count(1024, 18, "ecp5") == 1
    # Xilinx RAMB36: 64 x 784 in 512 x 72 -> 11
    assert fit.block_count(64, 784, "xilinx") == 11


def test_rom_luts_counts_leaves_and_select_trees():
    assert fit.rom_luts(1, 100, "ice40") == 0  # constants
    assert fit.rom_luts(2, 100, "ice40") == 0  # the address bit or its inverse
    assert fit.rom_luts(16, 3, "ice40") == 3  # one LUT4 per bit
    # 64 words: 4 LUT4 leaves and one 4:1 select of 2 LUT4s per bit
    assert fit.rom_luts(64, 1, "ice40") == 6
    # LUT6: 64 words in one LUT; 256 words in 4 and one 8:1 select (F7/F8 and a LUT)
    assert fit.rom_luts(64, 5, "xilinx") == 5
    assert fit.rom_luts(256, 1, "xilinx") == 5


def test_rom_placement_follows_the_option_and_the_auto_rule():
    for family in ("ice40", "ecp5", "xilinx"):
        assert fit.rom_placement(8, 8, "block", family) == "block"
        assert fit.rom_placement(4096, 64, "logic", family) == "logic"
    assert fit.rom_placement(64, 64, "lut", "xilinx") == "lut"
    assert fit.rom_placement(64, 64, "lut", "ice40") == "logic"  # no LUT RAM on iCE40
    # auto, as Yosys 0.23 placed the ROMs of bench/cost_fit.py's designs
    assert fit.rom_placement(64, 784, "auto", "ice40") == "logic"
    assert fit.rom_placement(64, 784, "auto", "ecp5") == "block"
    assert fit.rom_placement(64, 784, "auto", "xilinx") == "logic"
    assert fit.rom_placement(160, 16, "auto", "ice40") == "block"
    assert fit.rom_placement(160, 4, "auto", "ecp5") == "logic"
    assert fit.rom_placement(256, 16, "auto", "xilinx") == "logic"
    assert fit.rom_placement(256, 196, "auto", "xilinx") == "block"


def test_roms_of_a_folded_layer():
    net = mlp([16, 8, 4])
    the_plan = compiler.plan(net, "0:2,4;1:2,4")
    ranges = analyze_ranges(net)
    first, second = (fit.roms(net, lp, ranges) for lp in the_plan.layers)
    # layer 0: 4 row folds x 4 column folds of 2 x 4 ternary weights; thresholds of 4 row folds
    acc = ranges[0].acc_bits + (0 if ranges[0].acc_signed else 1)
    assert first == [(16, 16), (4, 2 * 2 * acc)]
    # layer 1 has no activation: weights only
    assert second == [(4, 16)]
    assert fit.roms(net, compiler.plan(net, "unrolled").layers[0], ranges) == []


def test_predictions_add_up_over_layers():
    net = mlp([64, 32, 10], in_type="uint4")
    the_plan = compiler.plan(net, "0:4,16;1:2,8", rom="block")
    ranges = analyze_ranges(net)
    for family in ("ice40", "ecp5", "xilinx"):
        total = fit.predict(the_plan, family, scaled=False)
        parts = [
            fit.predict_layer(net, lp, ranges, family, "block", scaled=False)
            for lp in the_plan.layers
        ]
        assert total.bram == sum(p.bram for p in parts) > 0
        # the layers' and the final argmax's (hw.argmax, cost.argmax)
        assert the_plan.output_predicted.ffs > 0
        assert total.ffs == sum(p.ffs for p in parts) + the_plan.output_predicted.ffs
        # block RAM read data registered once more (hw.folded), with the input slice and 8
        # control bits: layer 0's 4 x 16 ternary weights, 4 x 2 thresholds, 16 uint4 inputs;
        # layer 1's 2 x 8 weights (no activation), 8 ternary inputs. On ECP5 the read data's
        # registers are the DP16KDs' own (gen.flow.outreg): the slices and control remain.
        acc = ranges[0].acc_bits + (0 if ranges[0].acc_signed else 1)
        read_data = (4 * 16 * 2 + 4 * 2 * acc) + (2 * 8 * 2)
        beside = (16 * 4 + 8) + (8 * 2 + 8)
        block_read = beside + (0 if family == "ecp5" else read_data)
        assert total.ffs == the_plan.predicted.ffs + block_read
        # unscaled, ROMs in block RAM: the resource model's LUTs
        assert total.luts == the_plan.predicted.luts


# --- budgets and --part ---------------------------------------------------------------------


def test_budget_is_the_capacity_times_the_utilization():
    # UP5K: 5,280 LUTs and flip-flops, 30 EBR, 8 SB_MAC16; ECP5-85k: 83,640, 208 DP16KD, 156
    # MULT18X18D (the data sheets' figures, in gen.flow.targets)
    assert fit.budget("ice40-up5k", 0.5) == fit.PartResources(2640, 2640, 15, dsp=4)
    assert fit.budget("ecp5-85k") == fit.PartResources(66912, 66912, 166, dsp=124)
    with pytest.raises(CompileError, match="utilization must be above 0"):
        fit.budget("ice40-up5k", 1.5)
    with pytest.raises(CompileError, match="--part takes a part with known resources"):
        fit.budget("xilinx7")
    with pytest.raises(CompileError, match="unknown target 'bogus'"):
        fit.budget("bogus")


def _fastest_by_brute_force(net, part, utilization):
    """The smallest initiation interval of every combination of every layer's foldings whose
    prediction, with the pin wrapper's and the final argmax's, fits: an exhaustive search,
    independent of the planner's. Each layer's foldings are the planner's candidates: every
    (PE, SIMD), and each with its weight ROM split between block RAM and logic."""
    ranges = analyze_ranges(net)
    family = fit.part_family(part)
    limit = fit.budget(part, utilization)
    candidates = [
        plan_module._with_splits(
            plan_module._candidates(net, k, ranges), net, k, ranges, "auto", part
        )
        for k in range(len(net.layers))
    ]
    # the argmax's share as the planner weighs it: with the input register a folded last layer
    # gets, the larger of its two forms
    argmax = estimate.output_estimate(net, plan_module._argmax_stages(net, last_folded=True))
    outside = fit.wrapper(net, family) + fit.output_resources(argmax, family)
    best = None
    for combo in itertools.product(*candidates):
        parts = [fit.predict_layer(net, p, ranges, family, "auto") for p in combo]
        if fit.fits(sum(parts, outside), limit):
            ii = max(p.initiation_interval for p in combo)
            best = ii if best is None else min(best, ii)
    return best


@pytest.mark.parametrize("utilization", [0.05, 0.2, 0.3, 0.5, 1.0])
def test_part_takes_the_fastest_folding_that_fits(utilization):
    net = mlp([64, 32, 10], in_type="uint4")
    best = _fastest_by_brute_force(net, "ice40-up5k", utilization)
    if best is None:
        with pytest.raises(CompileError, match=f"no folding fits {utilization:.0%} of ice40-up5k"):
            compiler.plan(net, "auto", part="ice40-up5k", utilization=utilization)
        return
    the_plan = compiler.plan(net, "auto", part="ice40-up5k", utilization=utilization)
    assert the_plan.initiation_interval == best
    with_pins = fit.predict(the_plan, "ice40") + fit.wrapper(net, "ice40")
    assert fit.fits(with_pins, fit.budget("ice40-up5k", utilization))
    assert the_plan.options["part"] == "ice40-up5k"
    assert the_plan.options["utilization"] == utilization


def test_a_larger_part_is_never_slower():
    net = network.load(os.path.join(MODELS, "tfc-w1a1.tnn.json"))
    iis = [
        compiler.plan(net, "auto", part=p).initiation_interval
        for p in ("ice40-hx8k", "ecp5-25k", "ecp5-85k")
    ]
    assert iis == sorted(iis, reverse=True)
    assert iis[0] > iis[2]


def test_part_with_target_ii_checks_the_fit():
    net = mlp([64, 32, 10], in_type="uint4")
    ok = compiler.plan(net, "auto", target_ii=64, part="ice40-up5k")
    assert ok.initiation_interval <= 64
    with pytest.raises(CompileError, match="target II 1 is predicted at .* over 1% of ice40-up5k"):
        compiler.plan(net, "auto", target_ii=1, part="ice40-up5k", utilization=0.01)
    with pytest.raises(CompileError, match="give a part or a LUT limit, not both"):
        compiler.plan(net, "auto", max_luts=1000, part="ice40-up5k")
    with pytest.raises(CompileError, match="part to fill applies to 'auto' layers"):
        compiler.plan(net, "unrolled", part="ice40-up5k")


def test_part_on_the_command_line(tmp_path, capsys):
    model = os.path.join(MODELS, "tiny-mlp.tnn.json")
    out = tmp_path / "acc"
    assert (
        cli.main(["verilog", model, "--part", "ice40-up5k", "--vectors", "4", "-o", str(out)]) == 0
    )
    with open(out / "tiny-mlp.json") as f:
        options = json.load(f)["generator"]["options"]
    assert options["part"] == "ice40-up5k" and options["fold"] == "auto"
    capsys.readouterr()
    bad = [
        (["--utilization", "0.5"], "--utilization applies to --part"),
        (["--part", "xilinx7"], "argument --part: invalid choice"),
        (["--part", "ice40-up5k", "--utilization", "1.5"], "must be a number above 0, at most 1"),
        (["--part", "ice40-up5k", "--max-luts", "100"], "give a part or a LUT limit, not both"),
    ]
    for extra, message in bad:
        try:
            code = cli.main(["verilog", model, "-o", str(tmp_path / "x"), *extra])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        assert code == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "x").exists()


def test_ice40_logic_cells_bound_the_fit():
    # A flip-flop its own LUT does not feed takes an iCE40 logic cell of its own: a prediction
    # whose LUTs fit can still overflow the cells.
    limit = fit.budget("ice40-up5k", 1.0)
    assert limit.cells == 5280
    assert fit.fits(fit.PartResources(5000, 0, 0, 5000), limit)
    assert not fit.fits(fit.PartResources(5000, 1000, 0, 5550), limit)
    net = mlp([64, 32, 10], in_type="uint4")
    the_plan = compiler.plan(net, "unrolled")
    ice40, ecp5 = fit.predict(the_plan, "ice40"), fit.predict(the_plan, "ecp5")
    assert abs(ice40.cells - (ice40.luts + fit.ICE40_UNPAIRED_FF * ice40.ffs)) <= 1
    assert ecp5.cells == ecp5.luts


def test_part_leaves_out_a_design_measured_beyond_the_parts_cells():
    # digits-bfcn unrolled: its predicted LUT4s fit the UP5K's 5,280, but nextpnr packed it into
    # 5,761 logic cells (models/README.md), as the cells predicted say. --part must not take it.
    net = network.load(os.path.join(MODELS, "digits-bfcn.tnn.json"))
    unrolled = fit.predict(compiler.plan(net, "unrolled"), "ice40")
    assert unrolled.luts <= fit.budget("ice40-up5k", 1.0).luts < unrolled.cells
    # (its smallest folding needs more than 80% of the part's flip-flops: the whole of it)
    chosen = compiler.plan(net, "auto", part="ice40-up5k", utilization=1.0)
    assert any(layer.engine == "folded" for layer in chosen.layers)
    with_pins = fit.predict(chosen, "ice40") + fit.wrapper(net, "ice40")
    assert fit.fits(with_pins, fit.budget("ice40-up5k", 1.0))


def test_the_pin_wrapper_is_a_register_per_vector_bit():
    # digits-mlp: 64 uint4 inputs (256 bits) and an argmax over 10 classes (4 bits); measured
    # 295 flip-flops (Yosys 0.23 on the UP5K: 1,401 in all, 1,106 of them the accelerator's).
    net = network.load(os.path.join(MODELS, "digits-mlp.tnn.json"))
    pins = fit.wrapper(net, "ice40")
    assert pins.ffs == 256 + 4 + fit.WRAPPER_FF_EXTRA
    assert abs(pins.ffs - 295) / 295 < 0.05
    assert fit.wrapper(net, "ecp5").cells == fit.wrapper(net, "ecp5").luts


# --- weight ROMs split between block RAM and logic -------------------------------------------


def test_split_rom_terms_worked_by_hand():
    # a 32-deep ROM of 128-bit words with its low 80 bits in block RAM: iCE40 EBRs are 16 bits
    # wide at that depth (256 x 16), so 5 of them; the other 48 bits in logic, each bit two
    # LUT4 leaves of 16 words and a 2:1 select taken as 2 LUT4s (fit.rom_luts): 4 LUT4s a bit
    net = mlp([64, 32, 10], in_type="uint4")
    ranges = analyze_ranges(net)
    lp = plan_module._layer_plan(net, 0, (1, 64), ranges)
    assert fit.roms(net, lp, ranges)[0] == (32, 128)
    split = plan_module.dataclasses.replace(lp, block_bits=80)
    # thresholds in logic in both, so that only the weight ROM differs
    terms = fit.layer_terms(net, split, ranges, "ice40", "logic")
    whole = fit.layer_terms(net, lp, ranges, "ice40", "logic")
    assert terms["bram"] == 5 and whole["bram"] == 0
    assert whole["rom_luts"] - terms["rom_luts"] == 128 * 4 - 48 * 4
    assert fit.block_width(32, "ice40") == 16 and fit.block_width(512, "ice40") == 8
    assert fit.block_width(4096, "ice40") == 0


def test_a_split_rom_lets_a_bram_limited_network_go_faster():
    # mnist-mlp on an ECP5-85k: all weights in DP16KDs run out of block RAM at II 112, all in
    # logic of LUTs at II 256; splitting the wide, shallow ROMs reaches a smaller interval
    net = network.load(os.path.join(MODELS, "mnist-mlp.tnn.json"))
    block = compiler.plan(net, "auto", part="ecp5-85k", rom="block")
    logic = compiler.plan(net, "auto", part="ecp5-85k", rom="logic")
    split = compiler.plan(net, "auto", part="ecp5-85k")
    assert split.initiation_interval < min(block.initiation_interval, logic.initiation_interval)
    words = {
        lp.index: lp.pe * lp.simd * fit.weight_bits(net.layers[lp.index].weight_type)
        for lp in split.layers
    }
    assert any(0 < lp.block_bits < words[lp.index] for lp in split.layers if lp.block_bits)
    with_pins = fit.predict(split, "ecp5") + fit.wrapper(net, "ecp5")
    assert fit.fits(with_pins, fit.budget("ecp5-85k"))


def test_idle_block_rams_take_logic_rom_bits():
    """Once the interval is chosen, a split weight ROM moves further into block RAM while the
    part's blocks last: for mnist-mlp on an ECP5-85k no layer's next split step (one more
    eighth of its word's DP16KDs, as the splits are offered) still fits and saves logic."""
    net = network.load(os.path.join(MODELS, "mnist-mlp.tnn.json"))
    the_plan = compiler.plan(net, "auto", part="ecp5-85k")
    ranges = analyze_ranges(net)
    limit = fit.budget("ecp5-85k")
    outside = fit.wrapper(net, "ecp5")
    total = fit.predict(the_plan, "ecp5") + outside
    assert fit.fits(total, limit)
    split = [lp for lp in the_plan.layers if lp.block_bits is not None]
    assert split, "mnist-mlp's layer 0 is split"
    for lp in split:
        depth, word = fit.roms(net, lp, ranges)[0]
        unit = fit.block_width(depth, "ecp5")  # 36 bits at up to 512 words
        units = -(-word // unit)
        offered = sorted({min(word, round(units * i / 8) * unit) for i in range(9)})
        larger = [b for b in offered if b > lp.block_bits]
        if not larger:
            continue
        here = fit.predict_layer(net, lp, ranges, "ecp5")
        moved = dataclasses.replace(lp, block_bits=larger[0])
        there = fit.predict_layer(net, moved, ranges, "ecp5")
        assert there.cells < here.cells  # block RAM bits would save logic...
        layers = [moved if other is lp else other for other in the_plan.layers]
        bigger = fit.predict(dataclasses.replace(the_plan, layers=layers), "ecp5") + outside
        assert bigger.bram > total.bram
        assert not fit.fits(bigger, limit)  # ...but no longer fit
    # the blocks it took: more than the cheapest folding's 44 for layer 0 (1,584 bits)
    assert split[0].block_bits > 1584


@pytest.mark.tools
def test_split_rom_is_exact_and_placed_as_predicted(tmp_path):
    """The planner's split (64-32-10 on the UP5K at the lowest utilization that splits layer
    0's 128-bit words between EBRs and logic): bit-exact in Amaranth's simulator, and Yosys puts
    in block RAM what the prediction counts."""
    from accel_sim import simulate

    from gen import folder
    from gen.flow import synth
    from gen.network import golden
    from gen.progress import Progress

    net = mlp([64, 32, 10], in_type="uint4")
    out = tmp_path / "acc"
    utilization, the_plan = split_utilization(net)
    compiled, _, _ = folder.compile_to_folder(
        net, str(out), fold="auto", part="ice40-up5k", utilization=utilization, vectors=4
    )
    layers = compiled.metadata["layers"]
    block_bits = layers[0]["block_bits"]
    assert block_bits == the_plan.layers[0].block_bits and 0 < block_bits < 128
    assert "block_bits" not in layers[1]
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 20, seed=3)])
    assert np.array_equal(simulate(compiled, inputs, seed=1), golden.run(net, inputs))
    report = synth.run(str(out), "ice40-up5k", place_and_route=False, progress=Progress(None))
    predicted = compiled.metadata["predicted_by_family"]["ice40"]["bram"]
    # an EBR reads 16 bits: block_bits / 16 of them for layer 0, none for layer 1's 16 words
    assert predicted == block_bits // 16
    assert report["resources"]["accelerator"]["bram"] == predicted
