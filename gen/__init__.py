"""tnngen: from a trained ternary or binary network to a streaming hardware accelerator.

The subpackages, in the data's direction: :mod:`gen.network` (the ``tnn/1`` description, its
arithmetic, golden model and range analysis), :mod:`gen.learn` (quantizers, threshold folding,
the trainer, data sets), :mod:`gen.compiler` (planning, the resource and cycle models, building
and emitting the accelerator), :mod:`gen.folder` (the accelerator folder on disk) and
:mod:`gen.flow` (synthesis tools, targets, reports, sweeps); :mod:`gen.cli` is the command line.
"""

__all__ = ["version"]


def version():
    """The installed package's version (``0.0.0+source`` when run from a source tree)."""
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as package_version
    except ImportError:  # pragma: no cover - Python 3.10+ has importlib.metadata
        return "0.0.0+source"
    try:
        return package_version("tnngen")
    except PackageNotFoundError:
        return "0.0.0+source"
