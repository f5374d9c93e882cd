"""The network description, formats ``tnn/1`` and ``tnn/2``: its objects, validation, files,
arithmetic, golden model and range analysis.

The modules, in the data's direction: :mod:`~gen.network.description` (value types, layers,
:class:`Network`), :mod:`~gen.network.validate` (a parsed document into a network, within the
documented limits), :mod:`~gen.network.document` (files: :func:`load`, :func:`save`),
:mod:`~gen.network.arith` (the integer arithmetic, vectorized), :mod:`~gen.network.golden` (the
golden model), :mod:`~gen.network.ranges` (range analysis) and :mod:`~gen.network.summary` (the
text ``tnngen check`` prints). The names most callers need are importable from here.
"""

from .description import (
    FORMAT,
    FORMAT_2,
    FORMATS,
    INT_WEIGHT_TYPES,
    OUTPUTS,
    WEIGHT_TYPES,
    Activation,
    Conv2d,
    Dense,
    DescriptionError,
    InputSpec,
    MaxPool,
    Network,
    ValueType,
    WeightedLayer,
)
from .document import description_sha256, dumps, load, loads, save, to_dict, weight_rows
from .validate import (
    MAX_ABS_VALUE,
    MAX_ACCUMULATOR,
    MAX_DIM,
    MAX_FILE_BYTES,
    MAX_LAYERS,
    MAX_LEVELS,
    MAX_TENSOR,
    MAX_WEIGHTS,
    from_dict,
)

__all__ = [
    "FORMAT",
    "FORMAT_2",
    "FORMATS",
    "WEIGHT_TYPES",
    "INT_WEIGHT_TYPES",
    "OUTPUTS",
    "DescriptionError",
    "ValueType",
    "InputSpec",
    "Activation",
    "WeightedLayer",
    "Dense",
    "Conv2d",
    "MaxPool",
    "Network",
    "load",
    "loads",
    "from_dict",
    "to_dict",
    "save",
    "dumps",
    "weight_rows",
    "description_sha256",
    "MAX_FILE_BYTES",
    "MAX_LAYERS",
    "MAX_DIM",
    "MAX_TENSOR",
    "MAX_WEIGHTS",
    "MAX_LEVELS",
    "MAX_ABS_VALUE",
    "MAX_ACCUMULATOR",
]
