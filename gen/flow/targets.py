"""Synthesis targets: each part's Yosys flow, nextpnr options and resources."""

from dataclasses import dataclass, field

from .errors import SynthInputError

__all__ = ["Target", "TARGETS", "ASIC_GATES", "get_target"]


@dataclass(frozen=True)
class Target:
    """A synthesis target: a family's Yosys flow and, for a named part, nextpnr's.

    Attributes
    ----------
    name : str
        The name users give (``ice40-up5k``).
    family : str
        ``ice40``, ``ecp5``, ``xilinx`` or ``asic``: which cells count as what.
    part : str
        The device and package, or a description where there is no part.
    synth : str
        The Yosys synthesis command; ``{top}`` is replaced by the top module.
    pnr_tool : str or None
        nextpnr's name (``nextpnr-ice40``) for a place-and-route target, else ``None``.
    pnr_args : tuple of str
        Device and package options for nextpnr.
    capacity : dict
        The part's resources per report figure (``luts``, ``ffs``, ``bram``, ``dsp``, ``io``;
        ``io`` counts the package's user I/O pins), from the vendors' data sheets. nextpnr's
        own figures replace them where its report has them.
    default_freq : float
        The clock constraint in MHz when none is given. It is a goal for nextpnr's
        timing-driven placement; the report gives the Fmax achieved either way.
    """

    name: str
    family: str
    part: str
    synth: str
    pnr_tool: str | None = None
    pnr_args: tuple = ()
    capacity: dict = field(default_factory=dict)
    default_freq: float | None = None

    @property
    def place_and_route(self):
        return self.pnr_tool is not None


TARGETS = {
    t.name: t
    for t in [
        Target(
            name="ice40-up5k",
            family="ice40",
            part="iCE40UP5K-SG48",
            # -dsp: multipliers (folded intN engines' multiply="dsp") to SB_MAC16
            synth="synth_ice40 -dsp -top {top}",
            pnr_tool="nextpnr-ice40",
            pnr_args=("--up5k", "--package", "sg48"),
            # iCE40 UltraPlus family data sheet (FPGA-DS-02008): 5280 LUTs, 30 EBR,
            # 8 DSP, 39 I/O in SG48.
            capacity={"luts": 5280, "ffs": 5280, "bram": 30, "dsp": 8, "io": 39},
            default_freq=48.0,
        ),
        Target(
            name="ice40-hx8k",
            family="ice40",
            part="iCE40HX8K-CT256",
            synth="synth_ice40 -top {top}",
            pnr_tool="nextpnr-ice40",
            pnr_args=("--hx8k", "--package", "ct256"),
            # iCE40 LP/HX family data sheet (FPGA-DS-02029): 7680 LUTs, 32 EBR, 206 I/O in CT256.
            capacity={"luts": 7680, "ffs": 7680, "bram": 32, "dsp": 0, "io": 206},
            default_freq=80.0,
        ),
        Target(
            name="ecp5-25k",
            family="ecp5",
            part="LFE5U-25F-CABGA256",
            synth="synth_ecp5 -top {top}",
            pnr_tool="nextpnr-ecp5",
            pnr_args=("--25k", "--package", "CABGA256"),
            # ECP5 family data sheet (FPGA-DS-02012): 24,288 LUTs, 56 EBR, 28 18x18
            # multipliers, 197 I/O in CABGA256.
            capacity={"luts": 24288, "ffs": 24288, "bram": 56, "dsp": 28, "io": 197},
            default_freq=125.0,
        ),
        Target(
            name="ecp5-85k",
            family="ecp5",
            part="LFE5U-85F-CABGA381",
            synth="synth_ecp5 -top {top}",
            pnr_tool="nextpnr-ecp5",
            pnr_args=("--85k", "--package", "CABGA381"),
            # ECP5 family data sheet: 83,640 LUTs, 208 EBR, 156 18x18 multipliers,
            # 205 I/O in CABGA381.
            capacity={"luts": 83640, "ffs": 83640, "bram": 208, "dsp": 156, "io": 205},
            default_freq=125.0,
        ),
        Target(
            name="xilinx7",
            family="xilinx",
            part="Xilinx 7 series (synthesis only, no part)",
            synth="synth_xilinx -family xc7 -top {top}",
        ),
        Target(
            name="asic",
            family="asic",
            part="generic gates (Yosys abc -g)",
            synth="synth -flatten -top {top}",
        ),
    ]
}

ASIC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX"


def get_target(target):
    """The :class:`Target` named ``target``; raises :class:`SynthInputError` if none is."""
    if isinstance(target, Target):
        return target
    if target not in TARGETS:
        raise SynthInputError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")
    return TARGETS[target]
