"""Evaluations: the registry (:mod:`gan3d.eval.registry`) and the registered evaluations.

Importing this package registers every evaluation, so ``gan3d.eval.registry.EVALS`` is complete
wherever it is read.
"""

from gan3d.eval import classify, generation, quick, reconstruction  # noqa: F401  (each registers itself)
