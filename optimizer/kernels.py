"""Stationary kernels whose length scales are shared by groups of input columns.

A categorical variable reaches the GP as one one-hot column per choice. With a length scale
per column, 12 ligands, 4 bases and 4 solvents cost 20 hyperparameters per kernel term,
which 10 experiments cannot determine: the fit then declares most choices unrelated or
identical at random, and the search trails random sampling. With one length scale for the
whole one-hot block, the distance between two different choices is the same for every pair
(sqrt(2) / l), so the kernel factor of that variable is exp(-1 / l^2) when the choices
differ and 1 when they agree: the overlap (Hamming) kernel of the categorical-BO
literature, with one hyperparameter per variable. Numeric and descriptor columns each keep
their own group, so for them these kernels are sklearn's RBF and Matern.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.gaussian_process.kernels import (
    Hyperparameter,
    NormalizedKernelMixin,
    StationaryKernelMixin,
)

# scikit-optimize's base class: its kernel algebra (C * k + White) treats anything else as a
# constant.
from skopt.learning.gaussian_process.kernels import Kernel

__all__ = ["GroupedMatern", "GroupedRBF"]


class GroupedRBF(StationaryKernelMixin, NormalizedKernelMixin, Kernel):
    """exp(-r^2 / 2) with r^2 = sum over columns c of (x_c - y_c)^2 / l_{group(c)}^2.

    ``groups`` gives each input column its group (0 .. G-1); ``length_scale`` holds one
    value per group. (sklearn clones kernels through their constructor arguments, so they
    are stored as given.)"""

    def __init__(
        self,
        groups: Sequence[int],
        length_scale: Any,
        length_scale_bounds: Any = (1e-5, 1e5),
    ) -> None:
        self.groups = groups
        self.length_scale = length_scale
        self.length_scale_bounds = length_scale_bounds

    @property
    def hyperparameter_length_scale(self) -> Hyperparameter:
        return Hyperparameter(
            "length_scale", "numeric", self.length_scale_bounds, len(self._scales())
        )

    def _scales(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.length_scale, dtype=float))

    def _scaled_terms(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(n, m, groups): per group, the sum of squared scaled column differences."""
        groups = np.asarray(self.groups, dtype=int)
        scales = self._scales()
        d = (x[:, None, :] - y[None, :, :]) / scales[groups]
        out = np.zeros((*d.shape[:2], len(scales)))
        for g in range(len(scales)):
            out[:, :, g] = np.sum(d[:, :, groups == g] ** 2, axis=2)
        return out

    def _value(self, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kernel value and dk/d(r^2) as functions of r^2."""
        k = np.exp(-0.5 * r2)
        return k, -0.5 * k

    def __call__(
        self, X: np.ndarray, Y: np.ndarray | None = None, eval_gradient: bool = False
    ) -> Any:
        x = np.atleast_2d(X)
        if Y is not None and eval_gradient:
            raise ValueError("the gradient is only available when Y is None")
        y = x if Y is None else np.atleast_2d(Y)
        terms = self._scaled_terms(x, y)
        r2 = terms.sum(axis=2)
        k, dk_dr2 = self._value(r2)
        if not eval_gradient:
            return k
        if self.hyperparameter_length_scale.fixed:
            return k, np.empty((*k.shape, 0))
        # d(r^2) / d(log l_g) = -2 * terms_g
        return k, dk_dr2[:, :, None] * (-2.0 * terms)

    def __repr__(self) -> str:
        scales = ", ".join(f"{v:.3g}" for v in self._scales())
        return f"{type(self).__name__}(length_scale=[{scales}], groups={list(self.groups)})"


class GroupedMatern(GroupedRBF):
    """Matern-5/2 on the grouped distance: (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r)."""

    def _value(self, r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = np.sqrt(np.maximum(r2, 0.0))
        e = np.exp(-math.sqrt(5.0) * r)
        k = (1.0 + math.sqrt(5.0) * r + 5.0 / 3.0 * r2) * e
        # dk/dr = -(5/3) r (1 + sqrt5 r) e, and dr/d(r^2) = 1 / (2r): finite at r = 0
        return k, -(5.0 / 6.0) * (1.0 + math.sqrt(5.0) * r) * e
