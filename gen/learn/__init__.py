"""From trained models to descriptions: quantizers, exact threshold folding, the NumPy trainer,
data sets and evaluation.

Modules: :mod:`~gen.learn.quant` (weight and activation quantizers, the straight-through
estimator), :mod:`~gen.learn.fold` (real factors into integer thresholds, exactly),
:mod:`~gen.learn.config` (training configurations), :mod:`~gen.learn.model` (the trainable
network), :mod:`~gen.learn.train` (training and export to ``tnn/1``),
:mod:`~gen.learn.datasets` (the shipped data sets and MNIST IDX files) and
:mod:`~gen.learn.evaluate` (accuracy and confusion matrices). Importers of networks trained
elsewhere go beside them.
"""
