"""Folded intN engines on multiplier blocks (``--multiply``): the choice, its prediction per
family, the hardware against the golden model, and what Yosys makes of it."""

import numpy as np
import pytest
from accel_sim import simulate
from netgen import int_mlp

from gen import cli, compiler, folder
from gen.compiler import CompileError, fit
from gen.compiler.plan import plan
from gen.flow import synth
from gen.network import golden
from gen.progress import Progress
from hw.encoding import ValueEncoding
from hw.products import product_range


def multiplied(the_plan):
    return [(lp.index, lp.multiply) for lp in the_plan.layers if lp.engine == "folded"]


# --- which products multiplier blocks take --------------------------------------------------


def test_multiplier_maps_by_product_width():
    # int8 x uint4: products -1920..1905, 12 bits: iCE40's SB_MAC16 takes 11 and up
    u4 = ValueEncoding.uint(4)
    assert product_range(u4, "int8") == (-1920, 1905)
    assert fit.multiplier_maps("ice40", u4, "int8")
    assert fit.multiplier_maps("ice40", u4, "int7")  # -960..945: 11 bits
    assert not fit.multiplier_maps("ice40", u4, "int6")  # -480..465: 10 bits
    assert not fit.multiplier_maps("xilinx", u4, "int4")  # 8 bits; 9 and up map
    assert fit.multiplier_maps("xilinx", u4, "int5")
    assert fit.multiplier_maps("ecp5", ValueEncoding.ternary(), "int2")
    # binary inputs and ternary weights have no multiplier form
    assert not fit.multiplier_maps("ecp5", ValueEncoding.binary(), "int8")
    assert not fit.multiplier_maps("ecp5", u4, "ternary")


# --- the planner's choice ---------------------------------------------------------------------


def test_logic_and_no_part_multiply_in_logic():
    net = int_mlp([64, 16, 10], 8, "uint4")
    assert multiplied(plan(net, "auto", target_ii=64)) == [(0, "logic"), (1, "logic")]
    assert multiplied(plan(net, "auto", part="ecp5-25k", utilization=0.2, multiply="logic")) == [
        (0, "logic"),
        (1, "logic"),
    ]
    # the HX8K has no multiplier blocks
    assert all(m == "logic" for _, m in multiplied(plan(net, "auto", part="ice40-hx8k")))


def test_forced_multipliers_where_an_engine_can():
    net = int_mlp([16, 8, 4], 4, "uint4")
    assert multiplied(plan(net, "0:2,4;1:2,2", multiply="dsp")) == [(0, "dsp"), (1, "dsp")]
    # binary inputs have no multiplier form: layer 0 of this one stays logic
    binary_in = int_mlp([16, 8, 4], 4, "binary")
    assert multiplied(plan(binary_in, "0:2,4;1:2,2", multiply="dsp")) == [(0, "logic"), (1, "dsp")]


def test_auto_uses_the_parts_idle_multipliers():
    """With a part, the fastest folding that fits is found as without multipliers, then each
    layer whose products the part's blocks take moves to them while they last and save cells:
    each such layer takes fewer cells than the same folding (and ROM split) without them."""
    import dataclasses
    import importlib

    from gen.network.ranges import analyze_ranges

    plan_module = importlib.import_module("gen.compiler.plan")

    net = int_mlp([64, 16, 10], 8, "uint4")
    ranges = analyze_ranges(net)
    for part, utilization in [("ecp5-25k", 0.2), ("ecp5-25k", 0.4), ("ice40-up5k", 0.45)]:
        family = fit.part_family(part)
        limit = fit.budget(part, utilization)
        auto = plan(net, "auto", part=part, utilization=utilization)
        logic = plan(net, "auto", part=part, utilization=utilization, multiply="logic")
        assert auto.initiation_interval == logic.initiation_interval
        used = fit.predict(auto, family)
        assert 0 < used.dsp <= limit.dsp
        assert used.dsp == sum(lp.pe * lp.simd for lp in auto.layers if lp.multiply == "dsp")
        for lp in auto.layers:
            if lp.multiply != "dsp":
                continue
            twin = plan_module._layer_plan(net, lp.index, (lp.pe, lp.simd), ranges, "logic")
            twin = dataclasses.replace(twin, block_bits=lp.block_bits)
            with_blocks = fit.predict_layer(net, lp, ranges, family)
            assert with_blocks.cells < fit.predict_layer(net, twin, ranges, family).cells
        assert fit.fits(used + fit.wrapper(net, family), limit)
    # iCE40: layer 1's products (int8 by ternary, 9 bits) are too narrow for an SB_MAC16
    auto = plan(net, "auto", part="ice40-up5k", utilization=0.45)
    assert multiplied(auto) == [(0, "dsp"), (1, "logic")]


def test_prediction_per_family():
    """A multiplier-built engine counts a block per lane where the family maps its products,
    and its AND arrays' LUTs where it does not (int4 by uint4: 8-bit products)."""
    net = int_mlp([16, 8, 4], 4, "uint4")
    with_dsp = plan(net, "0:2,4;1:2,2", multiply="dsp")
    without = plan(net, "0:2,4;1:2,2", multiply="logic")
    ecp5, ice40 = fit.predict(with_dsp, "ecp5"), fit.predict(with_dsp, "ice40")
    assert ecp5.dsp == 2 * 4 + 2 * 2
    assert ecp5.luts < fit.predict(without, "ecp5").luts
    assert ice40.dsp == 0
    logic = fit.predict(without, "ice40")
    assert (ice40.luts, ice40.bram) == (logic.luts, logic.bram)
    # the AND arrays stack up to 4 bits a column, a multiplier's word one: a stage fewer each
    assert [lp.stages for lp in with_dsp.layers] == [s - 1 for s in (2, 1)]
    assert [lp.stages for lp in without.layers] == [2, 1]
    assert ice40.ffs < logic.ffs


def test_multiply_option_errors():
    net = int_mlp([16, 8, 4], 4, "uint4")
    with pytest.raises(CompileError, match=r"^multiply: expected one of auto, dsp, logic, not 'x'"):
        plan(net, "auto", multiply="x")
    with pytest.raises(CompileError, match=r"^multiply: expected one of auto, dsp, logic"):
        compiler.compile_network(net, "auto", multiply="mac")


def test_cli_rejects_an_unknown_multiply(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["verilog", "models/digits-mlp-w4.tnn.json", "--multiply", "mac"])
    assert exit_info.value.code == 2
    assert "--multiply: invalid choice: 'mac'" in capsys.readouterr().err


# --- the hardware -----------------------------------------------------------------------------


@pytest.mark.parametrize("bits, in_type", [(8, "uint4"), (4, "int3"), (2, "ternary")])
def test_multiplier_engines_match_the_golden_model(bits, in_type):
    net = int_mlp([12, 6, 4], bits, in_type, seed=bits)
    compiled = compiler.compile_network(net, "0:3,4;1:2,3", multiply="dsp")
    assert [layer["multiply"] for layer in compiled.metadata["layers"]] == ["dsp", "dsp"]
    inputs = np.concatenate([folder.corner_inputs(net), golden.random_inputs(net, 24, seed=5)])
    assert np.array_equal(simulate(compiled, inputs, seed=2), golden.run(net, inputs))


@pytest.mark.tools
@pytest.mark.parametrize("target, cell", [("ice40-up5k", "SB_MAC16"), ("ecp5-25k", "MULT18X18D")])
def test_yosys_maps_the_products_to_the_parts_multipliers(target, cell, tmp_path):
    """Synthesized (no place and route), the accelerator holds the multiplier blocks the
    prediction counts: a block per lane of each layer whose products the family takes."""
    net = int_mlp([16, 8, 4], 8, "uint4")
    out = tmp_path / "acc"
    folder.compile_to_folder(net, str(out), fold="0:2,4;1:2,2", multiply="dsp", vectors=4)
    report = synth.run(str(out), target, place_and_route=False, progress=Progress(None))
    family = fit.part_family(target)
    predicted = fit.predict(plan(net, "0:2,4;1:2,2", multiply="dsp"), family).dsp
    # iCE40: only layer 0 (int8 by uint4, 12-bit products); ECP5: both layers
    assert predicted == (8 if family == "ice40" else 12)
    accelerator = report["resources"]["accelerator"]
    assert accelerator["dsp"] == predicted
    assert accelerator["cells"][cell] == predicted


def test_more_products_than_the_parts_blocks_stop_before_yosys():
    """Forced multipliers beyond the part's blocks: a clear error before synthesis, naming
    the blocks and the ways out (the UP5K has 8 SB_MAC16; this folding's int8 layer takes 16)."""
    from gen.flow.errors import SynthInputError

    net = int_mlp([16, 8, 4], 8, "uint4")
    meta = compiler.compile_network(net, "0:4,4;1:2,2", multiply="dsp").metadata
    assert meta["predicted_by_family"]["ice40"]["dsp"] == 16
    with pytest.raises(SynthInputError, match=r"take 16 DSP blocks, and ice40-up5k .* has 8: give"):
        synth.check_fit(meta, "ice40-up5k")
    synth.check_fit(meta, "ecp5-25k")  # 20 of 28
