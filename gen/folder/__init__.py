"""The accelerator folder: the one owner of what ``tnngen verilog`` writes and every later step
reads (docs/accelerator.md).

A folder holds ``<name>.v`` (the Verilog), ``<name>.json`` (the metadata, format
:data:`FORMAT`) and ``vectors.npz`` (test vectors: inputs and the golden model's results). This
module writes the metadata (:func:`metadata`), makes test vectors (:func:`make_vectors`), writes
the files (:func:`write_folder`, and :func:`compile_to_folder` for the whole sequence from a
description), and reads a folder back, checked field by field (:func:`load`), for synthesis
(:mod:`gen.flow`) and simulation (:mod:`sim`).
"""

from .read import FORMAT, VECTORS, AcceleratorFolder, FolderError, Vectors, find_metadata, load
from .write import (
    compile_to_folder,
    corner_inputs,
    make_vectors,
    metadata,
    write_files,
    write_folder,
)

__all__ = [
    "FORMAT",
    "VECTORS",
    "FolderError",
    "metadata",
    "corner_inputs",
    "make_vectors",
    "write_folder",
    "write_files",
    "compile_to_folder",
    "Vectors",
    "AcceleratorFolder",
    "find_metadata",
    "load",
]
