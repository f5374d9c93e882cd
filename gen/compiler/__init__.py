"""The compiler: from a ``tnn/1`` description to a streaming accelerator and its Verilog.

Its steps (:mod:`gen.compiler.steps`), each a module: :mod:`~gen.compiler.plan` (engines and
foldings, from :mod:`~gen.compiler.folds` specs and the resource model
:mod:`~gen.compiler.cost`), :mod:`~gen.compiler.build` (the ``hw`` blocks as one pipeline),
:mod:`~gen.compiler.cycles` (latency and interval from the cycle model) and the emit step
(Verilog, and metadata through :mod:`gen.folder`). The names most callers need are importable
from here.
"""

from .build import Accelerator, OutputInfo, Stage, build, encoding_of
from .cycles import analytic_timing, cycle_model, transfer_times
from .folds import CompileError, parse_fold
from .plan import LayerPlan, Plan, describe_plan, plan
from .steps import STEPS, Compilation, CompileOptions, compile_network, top_name

__all__ = [
    "CompileError",
    "parse_fold",
    "LayerPlan",
    "Plan",
    "plan",
    "describe_plan",
    "Stage",
    "Accelerator",
    "OutputInfo",
    "build",
    "encoding_of",
    "transfer_times",
    "analytic_timing",
    "cycle_model",
    "Compilation",
    "CompileOptions",
    "STEPS",
    "compile_network",
    "top_name",
]
