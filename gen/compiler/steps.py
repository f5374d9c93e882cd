"""The compiler as named steps over one state: ``plan -> build -> time -> emit``.

Each step is a pure function ``step(compilation) -> compilation`` that fills in the fields its
successors read; :data:`STEPS` is the list :func:`compile_network` runs, in order, so that each
step can also be run (and tested) alone on the state its predecessors left.
"""

import dataclasses
import re
from dataclasses import dataclass

from amaranth.back import verilog

from .build import ROM_CHOICES, Accelerator, OutputInfo, build
from .cycles import cycle_model
from .fit import DEFAULT_UTILIZATION
from .folds import CompileError
from .plan import MULTIPLY_CHOICES, Plan, plan

__all__ = [
    "Compilation",
    "CompileOptions",
    "STEPS",
    "step_plan",
    "step_build",
    "step_time",
    "step_emit",
    "compile_network",
    "top_name",
]


def top_name(name):
    """The Verilog module name of a description's ``name``: every character other than a
    letter, digit or ``_`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


@dataclass(frozen=True)
class CompileOptions:
    """What the user chose: the folding spec (see :func:`gen.compiler.folds.parse_fold`) and the
    targets of ``auto`` layers."""

    fold: object = "unrolled"
    target_ii: int | None = None
    max_luts: int | None = None
    rom: str = "auto"
    part: str | None = None
    utilization: float = DEFAULT_UTILIZATION
    multiply: str = "auto"


@dataclass(frozen=True)
class Compilation:
    """The compiler's state: the network and options, and what each step has added.

    Members
    -------
    net : gen.network.Network
    options : CompileOptions
    plan : Plan
        From ``plan``: each layer's engine, folding, pipeline depth and predictions.
    top : Accelerator
        From ``build``: the Amaranth component, its stages in order.
    output : OutputInfo
        From ``build``: what a result on ``o`` is.
    timing : tuple
        From ``time``: ``(latency, initiation interval, how)`` in cycles.
    verilog : str
        From ``emit``: the Verilog text, deterministic.
    metadata : dict
        From ``emit``: the metadata of docs/accelerator.md.
    """

    net: object
    options: CompileOptions = CompileOptions()
    plan: Plan | None = None
    top: Accelerator | None = None
    output: OutputInfo | None = None
    timing: tuple | None = None
    verilog: str | None = None
    metadata: dict | None = None


def step_plan(c):
    """Choose every layer's engine and folding (:func:`gen.compiler.plan.plan`)."""
    o = c.options
    return dataclasses.replace(
        c,
        plan=plan(
            c.net,
            o.fold,
            target_ii=o.target_ii,
            max_luts=o.max_luts,
            rom=o.rom,
            part=o.part,
            utilization=o.utilization,
            multiply=o.multiply,
        ),
    )


def step_build(c):
    """Instantiate the plan's blocks as one stream pipeline (:func:`gen.compiler.build.build`)."""
    top, output = build(c.plan)
    return dataclasses.replace(c, top=top, output=output)


def step_time(c):
    """Latency and initiation interval from the cycle model (:mod:`gen.compiler.cycles`)."""
    return dataclasses.replace(c, timing=cycle_model(c.net, c.top))


def step_emit(c):
    """Convert to Verilog and describe the result in the metadata (:mod:`gen.folder`)."""
    from ..folder import metadata

    text = verilog.convert(
        c.top, name=top_name(c.net.name), emit_src=False, strip_internal_attrs=True
    )
    return dataclasses.replace(c, verilog=text, metadata=metadata(c))


#: The compiler's steps, in the order :func:`compile_network` runs them.
STEPS = (("plan", step_plan), ("build", step_build), ("time", step_time), ("emit", step_emit))


def compile_network(
    net,
    fold="unrolled",
    *,
    target_ii=None,
    max_luts=None,
    rom="auto",
    part=None,
    utilization=DEFAULT_UTILIZATION,
    multiply="auto",
    until=None,
    on_step=None,
):
    """Run :data:`STEPS` on ``net``; returns the final :class:`Compilation`.

    Parameters
    ----------
    net : gen.network.Network
    fold, target_ii, max_luts, rom, part, utilization, multiply
        The :class:`CompileOptions` (``rom``: :data:`gen.compiler.build.ROM_CHOICES`; ``part``,
        ``utilization`` and ``multiply``: :func:`gen.compiler.plan.plan`).
    until : str, optional
        Stop after the step of this name.
    on_step : callable, optional
        Called as ``on_step(name, compilation)`` after each step (progress displays).

    Raises
    ------
    gen.compiler.folds.CompileError
        For options that do not fit the network.
    """
    names = [name for name, _ in STEPS]
    if until is not None and until not in names:
        raise ValueError(f"Step must be one of {', '.join(names)}, not {until!r}")
    if rom not in ROM_CHOICES:
        raise CompileError(f"rom: expected one of {', '.join(ROM_CHOICES)}, not {rom!r}")
    if multiply not in MULTIPLY_CHOICES:
        raise CompileError(
            f"multiply: expected one of {', '.join(MULTIPLY_CHOICES)}, not {multiply!r}"
        )
    options = CompileOptions(fold, target_ii, max_luts, rom, part, utilization, multiply)
    state = Compilation(net, options)
    for name, step in STEPS:
        state = step(state)
        if on_step is not None:
            on_step(name, state)
        if name == until:
            break
    return state
