"""The tool flows after the compiler: synthesis and place and route of an accelerator folder
for a target part, the report of its resources and timing, and design-space sweeps.

Modules: :mod:`~gen.flow.targets` (the parts), :mod:`~gen.flow.tools` (finding and running
Yosys and nextpnr), :mod:`~gen.flow.synth` (the flow), :mod:`~gen.flow.parse` (reading the tools'
outputs), :mod:`~gen.flow.report` (the report), :mod:`~gen.flow.sweep` (several foldings and
their Pareto front) and :mod:`~gen.flow.errors`.
"""
