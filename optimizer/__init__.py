"""robochem.optimizer: Bayesian optimisation of experiments on scikit-optimize.

>>> from robochem.optimizer import Optimizer
>>> opt = Optimizer.from_spec({"variables": {"t": {"low": 60, "high": 1200}},
...                            "objectives": {"yield": {"goal": "maximize"}}})
>>> len(opt.ask(2))
2
"""

from .core import Optimizer
from .errors import ConstraintError, OptimizerError, SpecError, StateError
from .objectives import hypervolume, pareto_mask

__all__ = [
    "ConstraintError",
    "Optimizer",
    "OptimizerError",
    "SpecError",
    "StateError",
    "hypervolume",
    "pareto_mask",
]
