"""Writing an accelerator folder: its metadata, test vectors, and the files, replaced whole or
not at all (docs/accelerator.md)."""

import json
import os
import shutil
import tempfile

import numpy as np

from .. import version
from ..compiler import fit
from ..compiler.build import encoding_of
from ..compiler.steps import top_name
from ..files import umask_mode
from ..learn import datasets
from ..network import description_sha256, golden
from .read import FORMAT, VECTORS, FolderError, load

__all__ = [
    "metadata",
    "corner_inputs",
    "make_vectors",
    "write_folder",
    "write_files",
    "compile_to_folder",
]

# --- writing ------------------------------------------------------------------------------------


def metadata(compilation):
    """The metadata (docs/accelerator.md) of a :class:`gen.compiler.Compilation` that has been
    planned, built and timed."""
    the_plan, top, info = compilation.plan, compilation.top, compilation.output
    timing, net = compilation.timing, compilation.net
    in_encoding = encoding_of(net.input.type)
    count_in = int(np.prod(net.input.shape))
    stages = top.stages
    layers = []
    for lp in the_plan.layers:
        own = [s for s in stages if s.layer == lp.index]
        layers.append(
            {
                "index": lp.index,
                "type": lp.type,
                "engine": lp.engine,
                "pe": lp.pe,
                "simd": lp.simd,
                "stages": lp.stages,
                "blocks": [s.name for s in own],
                "latency": sum(s.latency for s in own),
                "initiation_interval": max(s.initiation_interval for s in own),
                "predicted": lp.predicted.asdict(),
            }
        )
        if lp.engine == "folded":
            layers[-1]["multiply"] = lp.multiply
            if lp.block_bits is not None:
                layers[-1]["block_bits"] = lp.block_bits
    name = top_name(net.name)
    out_width = info.count * info.encoding.width
    return {
        "format": FORMAT,
        "name": net.name,
        "top": name,
        "verilog": f"{net.name}.v",
        "description_sha256": description_sha256(net),
        "generator": {"tool": "tnngen", "version": version(), "options": the_plan.options},
        "clock": "clk",
        "reset": {"name": "rst", "active": "high", "synchronous": True},
        "ports": {
            "i": {
                "payload": "i__payload",
                "valid": "i__valid",
                "ready": "i__ready",
                "width": count_in * in_encoding.width,
            },
            "o": {
                "payload": "o__payload",
                "valid": "o__valid",
                "ready": "o__ready",
                "width": out_width,
            },
        },
        "input": {
            "shape": list(net.input.shape),
            "count": count_in,
            "type": net.input.type.name,
            "encoding": in_encoding.kind,
            "element_width": in_encoding.width,
        },
        "output": {
            "kind": info.kind,
            "shape": info.shape,
            "count": info.count,
            "encoding": info.encoding.kind,
            "element_width": info.encoding.width,
        },
        "latency": timing[0],
        "initiation_interval": timing[1],
        "timing_model": timing[2],
        "layers": layers,
        "predicted": the_plan.predicted.asdict(),
        "predicted_outside_layers": the_plan.output_predicted.asdict(),
        "predicted_by_family": {
            family: fit.predict(the_plan, family).asdict() for family in fit.FAMILY_SCALE
        },
    }


def corner_inputs(net):
    """Inputs at the corners of the input type: all lowest, all highest, all zero (if legal),
    and the two alternations of lowest and highest."""
    value_type = net.input.type
    shape = tuple(net.input.shape)
    lo = value_type.levels[0] if value_type.levels else value_type.lo
    hi = value_type.levels[-1] if value_type.levels else value_type.hi
    size = int(np.prod(shape))
    alternate = np.where(np.arange(size) % 2 == 0, lo, hi).reshape(shape)
    corners = [np.full(shape, lo), np.full(shape, hi), alternate, lo + hi - alternate]
    if value_type.contains(0):
        corners.insert(2, np.zeros(shape, dtype=np.int64))
    return np.array(corners, dtype=np.int64)


def make_vectors(net, count, *, seed=0, data=None):
    """Test vectors: ``(inputs, outputs, source)``.

    From the test split of a data set (its first ``count`` images) when ``data`` names one,
    else the corner inputs followed by random ones (``count`` in all).
    """
    if data is not None:
        dataset = datasets.load(data, "test")
        inputs = datasets.to_inputs(dataset, net.input)[:count]
        source = f"{data}:test[:{len(inputs)}]"
    else:
        corners = corner_inputs(net)[:count]
        rest = golden.random_inputs(net, max(0, count - len(corners)), seed=seed)
        inputs = np.concatenate([corners, rest]) if len(rest) else corners
        source = f"corners+random:{seed}"
    return inputs, golden.run(net, inputs), source


def write_folder(compiled, out_dir, vectors):
    """Write a compiled accelerator's ``<name>.v``, ``<name>.json`` and ``vectors.npz`` into
    ``out_dir`` (:func:`write_files`). Returns the paths written."""
    return write_files(out_dir, compiled.net.name, compiled.verilog, compiled.metadata, vectors)


def write_files(out_dir, name, verilog_text, meta, vectors):
    """Write ``<name>.v``, ``<name>.json`` (``meta``) and ``vectors.npz`` as the folder ``out_dir``.

    ``vectors`` is ``(inputs, outputs, source)``. The new folder is built beside ``out_dir`` and
    swapped in as a whole, so that a failure or an interruption leaves the old folder as it was,
    and no file of an earlier build survives beside the new Verilog: the simulator's builds and
    synthesis reports (``sim_build/``, ``synth-*``) are kept only when the Verilog is the very
    same. A folder holding anything else is refused rather than replaced. Returns the paths
    written.

    Raises
    ------
    FolderError
        If ``out_dir`` is a file, lies below one, holds files of its own, or cannot be written.
    """
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    kept = _entries_to_keep(out_dir, verilog_text)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tnngen-", dir=parent)
    except OSError as exc:
        raise FolderError(f"{out_dir}: cannot be written: {exc.strerror}") from None
    names = [f"{name}.v", f"{name}.json", VECTORS]
    old = None
    try:
        os.chmod(tmp, umask_mode(0o777))
        with open(os.path.join(tmp, names[0]), "w") as f:
            f.write(verilog_text)
        with open(os.path.join(tmp, names[1]), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        inputs, outputs, source = vectors
        np.savez(
            os.path.join(tmp, VECTORS), inputs=inputs, outputs=outputs, source=np.array(source)
        )
        if os.path.isdir(out_dir):
            old = tempfile.mkdtemp(prefix=".tnngen-old-", dir=parent)
            os.rename(out_dir, os.path.join(old, "folder"))
        for entry in kept:
            os.rename(os.path.join(old, "folder", entry), os.path.join(tmp, entry))
        os.rename(tmp, out_dir)
        tmp = None
        return [os.path.join(out_dir, item) for item in names]
    finally:
        if tmp is not None and old is not None and not os.path.exists(out_dir):
            # Interrupted between the two renames: the old folder goes back, whole.
            for entry in kept:
                if os.path.lexists(os.path.join(tmp, entry)):
                    os.rename(os.path.join(tmp, entry), os.path.join(old, "folder", entry))
            os.rename(os.path.join(old, "folder"), out_dir)
        for leftover in (tmp, old):
            if leftover is not None:
                shutil.rmtree(leftover, ignore_errors=True)


#: What a folder may hold beside its accelerator: the simulator's builds, synthesis reports.
_DERIVED = ("sim_build",)
_DERIVED_PREFIXES = ("synth-", ".tnngen-")


def _entries_to_keep(out_dir, verilog_text):
    """The derived entries of an existing accelerator folder to carry over (those of the same
    Verilog; none for ``verilog_text=None``), after checking that the folder holds nothing but
    an accelerator."""
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise FolderError(f"{out_dir}: a file, not a folder; choose another output folder")
    probe = os.path.dirname(out_dir)
    while probe and not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if probe and not os.path.isdir(probe):
        raise FolderError(f"{out_dir}: {probe} is a file, so no folder can be made below it")
    if not os.path.isdir(out_dir):
        return []
    entries = sorted(os.listdir(out_dir))
    if not entries:
        return []
    try:
        old = load(out_dir)
    except FolderError:
        old = None
    ours = set()
    if old is not None:
        ours = {os.path.basename(old.metadata_path), os.path.basename(old.verilog_path), VECTORS}
    derived = [e for e in entries if e in _DERIVED or e.startswith(_DERIVED_PREFIXES)]
    foreign = [e for e in entries if e not in ours and e not in derived]
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FolderError(
            f"{out_dir}: holds files that are not an accelerator's ({shown}); they would be "
            "lost, so choose an empty or new output folder"
        )
    if old is None or verilog_text is None:
        return []
    try:
        with open(old.verilog_path) as f:
            same = f.read() == verilog_text
    except (OSError, UnicodeDecodeError):
        same = False
    return derived if same else []


def compile_to_folder(
    net,
    out_dir,
    *,
    fold="unrolled",
    target_ii=None,
    max_luts=None,
    rom="auto",
    part=None,
    utilization=None,
    multiply="auto",
    vectors=256,
    seed=0,
    data=None,
    on_step=None,
):
    """Compile ``net`` and write its accelerator folder: the sequence every caller shares.

    Parameters
    ----------
    net : gen.network.Network
    out_dir : str
        The folder (created if missing).
    fold, target_ii, max_luts, rom, part, utilization, multiply
        As :func:`gen.compiler.compile_network` takes them (``utilization``: its default
        unless given).
    vectors, seed, data
        As :func:`make_vectors` takes them.
    on_step : callable, optional
        Called as ``on_step(name, state)`` after each compiler step, and as
        ``on_step("vectors", vectors)`` once the test vectors are made.

    Returns
    -------
    (Compilation, list of str, tuple)
        The compiler's final state, the paths written and the vectors ``(inputs, outputs,
        source)``.
    """
    from ..compiler import compile_network

    _entries_to_keep(os.path.abspath(out_dir), None)  # a bad destination fails before compiling
    limits = {} if utilization is None else {"utilization": utilization}
    compiled = compile_network(
        net,
        fold,
        target_ii=target_ii,
        max_luts=max_luts,
        rom=rom,
        part=part,
        multiply=multiply,
        on_step=on_step,
        **limits,
    )
    made = make_vectors(net, vectors, seed=seed, data=data)
    if on_step is not None:
        on_step("vectors", made)
    return compiled, write_folder(compiled, out_dir, made), made
