"""Typed errors raised by the optimiser, so callers can tell a bad spec from a bad call."""

from __future__ import annotations


class OptimizerError(Exception):
    """Base class of every error the optimiser raises on purpose."""


class SpecError(OptimizerError, ValueError):
    """The spec (variables, objectives, constraints, options) is malformed or inconsistent."""


class ConstraintError(SpecError):
    """A constraint expression is not valid (syntax, unknown name, forbidden construct)."""


class StateError(OptimizerError, ValueError):
    """A saved state, a point or a result does not match this optimiser."""
