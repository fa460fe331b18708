"""Surrogate models: a noise-estimating, outlier-tolerant GP for the objective (optionally
with each observation's reported noise) and a GP classifier for the probability that an
experiment succeeds (unknown constraints)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy.linalg import cho_solve
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from skopt.learning.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    Kernel,
    Matern,
    WhiteKernel,
)

from .kernels import GroupedMatern, GroupedRBF

# Noise variance in standardised units: NMR yields carry 1-3 % noise, so the floor is tiny
# but non-zero (keeps the Cholesky stable), the ceiling means "all noise".
NOISE_BOUNDS = (1e-4, 1.0)
LENGTH_SCALE_BOUNDS = (0.03, 30.0)
# Per-point extra variance given to an outlier, in standardised units: it then barely
# pulls the mean, but still counts as "explored".
OUTLIER_VARIANCE = 25.0
RESTART_LIMIT = 80
# Diagonal jitter of every training point (standardised units): keeps the Cholesky stable.
JITTER = 1e-8
# Kernel shapes by name (Matern smoothness nu; "rbf" is the infinitely smooth limit).
KERNELS: dict[str, float] = {"rbf": float("inf"), "matern52": 2.5, "matern32": 1.5}
# The default, "rbf+matern": a smooth RBF term for the broad trend of a reaction's yield
# plus a Matern-5/2 term for what is rougher, each with its own amplitude and length
# scales, weighed by the data. RBF alone needed fewer experiments than Matern-5/2 on the
# virtual-lab presets but converged less closely on Branin; the sum does both
# (docs/optimizer.md, "New defaults (25 Nov 2026)").
DEFAULT_KERNEL = "rbf+matern"
KERNEL_CHOICES = (DEFAULT_KERNEL, *KERNELS)
# Gamma(shape, rate) prior on every length scale (inputs scaled to [0, 1]); mean 1/3.
# With 5-15 points in 4-6 dimensions the plain maximum-likelihood fit often declares a
# variable irrelevant (length scale at its upper bound) or interpolates noise (tiny length
# scale); the prior keeps the fit in the range where a reaction's response actually varies.
# Chosen by benchmark (docs/optimizer.md): 95 % of the optimum on the virtual-lab presets in
# 12.5-14.5 experiments instead of 17.5-26.
DEFAULT_LENGTH_SCALE_PRIOR = (2.0, 6.0)
# Gamma(shape, rate) prior on the length scales of descriptor columns (a categorical whose
# choices come with descriptor vectors, each column min-max scaled to [0, 1]); mean 20, so
# "choices with similar descriptors behave alike" is the starting belief and the data must
# show a short-range effect. Without it the maximum-likelihood fit on a mostly-zero yield
# table shrinks the descriptor length scales, every untried choice looks independent and
# the search wanders (direct-arylation replay: mean best after 20 experiments 85.0 -> 90.6;
# docs/optimizer.md).
DEFAULT_DESCRIPTOR_PRIOR = (2.0, 0.1)
# Related tasks (warm start from earlier campaigns on another substrate): the task
# indicators' shared length scale starts at 2 (correlation exp(-1/4) = 0.78 in the RBF
# term) under a Gamma(4, 2) prior (mean 2), so before this reaction has results of its own
# the earlier ones are believed to carry over mostly; its own results then say how much.
TASK_START = 2.0
TASK_PRIOR = (4.0, 2.0)


def _log_shift(y: np.ndarray) -> float:
    """What ``log`` warping adds before the log, so that every value is at least 1."""
    return 1.0 - float(y.min()) if y.min() < 1.0 else 0.0


def transform_output(y: np.ndarray, kind: str) -> np.ndarray:
    """Monotone output warping before standardisation."""
    if kind == "none" or y.size < 3:
        return y
    if kind == "rank":
        # Gaussian copula: ranks to normal quantiles; robust to skewed, mostly-zero data.
        order = np.argsort(np.argsort(y, kind="stable"), kind="stable").astype(float)
        # average tied ranks so equal values map to the same quantile
        for value in np.unique(y):
            tie = y == value
            if tie.sum() > 1:
                order[tie] = order[tie].mean()
        return norm.ppf((order + 0.5) / y.size)
    if kind == "log":
        return np.log(y + _log_shift(y))
    raise ValueError(kind)


def transform_noise(y: np.ndarray, variance: np.ndarray, kind: str) -> np.ndarray | None:
    """Per-point noise variances of ``y`` carried through :func:`transform_output`, or None
    where that cannot be done honestly (the model then learns one noise level instead).

    ``log`` uses the delta method, var / (y + shift)^2; ``rank`` maps each value to a
    quantile that depends on all the others, so a reading's own spread has no image there.
    """
    if kind == "none" or y.size < 3:
        return variance
    if kind == "log":
        return variance / (y + _log_shift(y)) ** 2
    return None


def build_kernel(
    column_priors: np.ndarray,
    kind: str,
    groups: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> tuple[Kernel, np.ndarray]:
    """Constant x stationary kernel (``kind``, a length scale per encoded column; for
    ``rbf+matern`` the sum of two such terms) + white noise, and the Gamma (shape, rate)
    prior of each entry of its ``theta`` (constants, length scales, noise; shape 0: no
    prior), given one prior row per encoded column. With ``groups`` (a group index per
    encoded column) the columns of one group share a length scale (``kernels.py``: the
    overlap kernel for a categorical's one-hot block), and take its first column's prior.
    ``start``: the first length scale of each group (default 0.5)."""
    if groups is None:
        d = len(column_priors)
        start = np.full(d, 0.5) if start is None else start
        priors = column_priors

        def shape_of(nu: float) -> Kernel:
            if math.isinf(nu):
                return RBF(start, LENGTH_SCALE_BOUNDS)
            return Matern(start, LENGTH_SCALE_BOUNDS, nu=nu)
    else:
        groups = np.asarray(groups, dtype=int)
        n = int(groups.max()) + 1
        first = [int(np.flatnonzero(groups == g)[0]) for g in range(n)]
        priors = column_priors[first]
        start = np.full(n, 0.5) if start is None else start
        cols = tuple(int(g) for g in groups)

        def shape_of(nu: float) -> Kernel:
            if math.isinf(nu):
                return GroupedRBF(cols, start, LENGTH_SCALE_BOUNDS)
            if nu != 2.5:
                raise ValueError("grouped length scales support rbf and matern52 only")
            return GroupedMatern(cols, start, LENGTH_SCALE_BOUNDS)

    none = np.zeros((1, 2))
    if kind == "rbf+matern":
        smooth = ConstantKernel(1.0, (1e-2, 1e2)) * shape_of(KERNELS["rbf"])
        rough = ConstantKernel(0.1, (1e-3, 1e2)) * shape_of(KERNELS["matern52"])
        return (smooth + rough + WhiteKernel(1e-2, NOISE_BOUNDS),
                np.vstack([none, priors, none, priors, none]))
    kernel = ConstantKernel(1.0, (1e-2, 1e2)) * shape_of(KERNELS[kind]) + WhiteKernel(
        1e-2, NOISE_BOUNDS
    )
    return kernel, np.vstack([none, priors, none])


class _MapGaussianProcess(GaussianProcessRegressor):
    """Hyperparameters by maximum a posteriori: the marginal likelihood plus Gamma priors
    on length scales. ``theta_prior`` holds (shape, rate) per entry of the kernel's
    ``theta`` (log scale); shape 0 means no prior."""

    def __init__(self, kernel: Any = None, *, theta_prior: np.ndarray | None = None,
                 **kwargs: Any) -> None:
        super().__init__(kernel, **kwargs)
        self.theta_prior = theta_prior

    def log_marginal_likelihood(  # type: ignore[override]
        self, theta: Any = None, eval_gradient: bool = False, clone_kernel: bool = True
    ) -> Any:
        out = super().log_marginal_likelihood(theta, eval_gradient, clone_kernel)
        if theta is None or self.theta_prior is None:  # theta None: the fitted value
            return out
        shape, rate = np.asarray(self.theta_prior, dtype=float).T
        log_l = np.asarray(theta, dtype=float)
        on = shape > 0
        # log Gamma density of l = exp(log_l), with the Jacobian of the log transform
        log_prior = float(np.sum(np.where(on, shape * log_l - rate * np.exp(log_l), 0.0)))
        if not eval_gradient:
            return out + log_prior
        grad = np.where(on, shape - rate * np.exp(log_l), 0.0)
        return out[0] + log_prior, out[1] + grad


class GPModel:
    """GP regression on standardised targets with an estimated white-noise level.

    ``fit`` may be given each point's reported noise variance (NaN: not reported). It
    enters as that point's ``alpha`` (the GP's per-point diagonal), so a reading with a
    large reported spread pulls the mean less. The white-noise kernel is kept for what the
    reports do not cover (model misfit, unreported points); when every report explains the
    scatter its fitted level goes to the floor of ``NOISE_BOUNDS``.
    """

    def __init__(
        self,
        restarts: int = 2,
        outlier_z: float = 4.0,
        seed: int = 0,
        length_scale_prior: tuple[float, float] | None = DEFAULT_LENGTH_SCALE_PRIOR,
        prior_mask: np.ndarray | None = None,
        descriptor_prior: tuple[float, float] | None = None,
        descriptor_mask: np.ndarray | None = None,
        kernel: str = DEFAULT_KERNEL,
        groups: np.ndarray | None = None,
        task_columns: int = 0,
    ) -> None:
        if kernel not in KERNEL_CHOICES:
            raise ValueError(f"unknown kernel {kernel!r}")
        self.kernel = kernel
        self.restarts = restarts
        self.outlier_z = outlier_z
        self.seed = seed
        self.length_scale_prior = length_scale_prior
        # Which input columns get the prior (None: all). A categorical's one-hot columns do
        # not: how much the choices share is for the data to say, and a short length scale
        # there makes every untried choice look like a fresh gamble. Descriptor columns
        # (``descriptor_mask``) get their own prior, ``descriptor_prior``.
        self.prior_mask = prior_mask
        self.descriptor_prior = descriptor_prior
        self.descriptor_mask = descriptor_mask
        # Encoded columns sharing a length scale (None: one per column); see build_kernel.
        self.groups = groups
        # The last ``task_columns`` columns say which task (this reaction, or a related
        # earlier one) a point belongs to; they form the last group. Their length scale
        # decides how far related tasks' results carry over: exp(-1/l^2) in the RBF term.
        self.task_columns = task_columns
        self.outliers: np.ndarray = np.zeros(0, dtype=bool)

    def fit(
        self, x: np.ndarray, y: np.ndarray, noise_variance: np.ndarray | None = None
    ) -> GPModel:
        """Fit to ``y`` at ``x``; ``noise_variance`` (units of y squared, NaN where not
        reported) is each point's own measurement noise."""
        self.x = np.asarray(x, dtype=float)
        self.y_raw = np.asarray(y, dtype=float)
        self.mean = float(self.y_raw.mean())
        std = float(self.y_raw.std())
        self.std = std if std > 1e-12 else 1.0
        ys = (self.y_raw - self.mean) / self.std
        # Reported variances in standardised units; 0 where none was reported.
        self.reported = np.zeros(len(ys))
        if noise_variance is not None:
            v = np.asarray(noise_variance, dtype=float)
            if v.shape != ys.shape:
                raise ValueError(f"noise_variance has shape {v.shape}, y has {ys.shape}")
            known = np.isfinite(v)
            if (v[known] < 0).any():
                raise ValueError("noise variances must be >= 0")
            self.reported[known] = v[known] / self.std**2
        self.alpha = self.reported + JITTER
        # Restarts guard against poor local optima of the likelihood, which matter with few
        # points; with many the likelihood is well determined and each restart costs O(n^3).
        restarts = self.restarts if len(ys) < RESTART_LIMIT else min(self.restarts, 1)
        kernel, self.theta_prior = build_kernel(
            self._column_priors(), self.kernel, self.groups, self._start())
        self.gp = self._fit(kernel, ys, restarts)
        self.outliers = np.zeros(len(ys), dtype=bool)
        if len(ys) >= 8 and self.outlier_z > 0:
            self._flag_outliers(ys)
        self.ys = ys
        return self

    def _column_priors(self) -> np.ndarray:
        """(shape, rate) per encoded column; zeros where no prior applies."""
        d = self.x.shape[1]
        mask = np.ones(d, bool) if self.prior_mask is None else np.asarray(self.prior_mask)
        out = np.zeros((d, 2))
        if self.length_scale_prior is not None:
            out[mask] = self.length_scale_prior
        if self.descriptor_prior is not None and self.descriptor_mask is not None:
            out[np.asarray(self.descriptor_mask, bool)] = self.descriptor_prior
        if self.task_columns:
            out[d - self.task_columns :] = TASK_PRIOR
        return out

    def _start(self) -> np.ndarray | None:
        """First length scale per group: 0.5, and TASK_START for the task group."""
        if not self.task_columns:
            return None
        n = (self.x.shape[1] - self.task_columns + 1 if self.groups is None
             else int(np.max(self.groups)) + 1)
        start = np.full(n, 0.5)
        start[-1] = TASK_START
        return start

    def _flag_outliers(self, ys: np.ndarray) -> None:
        """Flag a few readings that the rest of the data cannot explain.

        A GP can "explain" a wild point by shrinking its length scale, so the leave-one-out
        residual of the full fit understates it. A suspicious point is therefore held out,
        the model refitted without it and the point judged against that prediction (noise
        included); a flagged point keeps its place but gets a large noise variance.
        """
        for _ in range(max(1, len(ys) // 10)):
            z = self._loo_z()
            z[self.outliers] = 0.0
            i = int(np.argmax(np.abs(z)))
            if abs(z[i]) < 2.0:
                return
            keep = np.ones(len(ys), dtype=bool)
            keep[i] = False
            keep &= ~self.outliers
            held = GPModel(0, 0.0, self.seed, self.length_scale_prior, self.prior_mask,
                           self.descriptor_prior, self.descriptor_mask, self.kernel,
                           self.groups, self.task_columns)
            held.theta_prior = self.theta_prior
            held.x, held.alpha = self.x[keep], self.reported[keep] + JITTER
            gp = held._fit(self.gp.kernel_, ys[keep], 0)
            mu, sd = gp.predict(self.x[i : i + 1], return_std=True)  # sd includes noise
            # A reading is judged against its own reported spread too: missing by that
            # much is what the report said could happen.
            spread = math.sqrt(sd[0] ** 2 + self.reported[i])
            if abs(ys[i] - mu[0]) / max(spread, 1e-9) <= self.outlier_z:
                return
            self.outliers[i] = True
            self.alpha = self.reported + JITTER + np.where(self.outliers, OUTLIER_VARIANCE, 0.0)
            self.gp = self._fit(gp.kernel_, ys, 0)

    def _fit(self, kernel: Any, ys: np.ndarray, restarts: int) -> GaussianProcessRegressor:
        options: dict[str, Any] = {
            "kernel": kernel, "alpha": self.alpha, "normalize_y": False,
            "n_restarts_optimizer": restarts, "random_state": self.seed,
        }
        if not self.theta_prior[:, 0].any():
            gp: GaussianProcessRegressor = GaussianProcessRegressor(**options)
        else:
            gp = _MapGaussianProcess(theta_prior=self.theta_prior, **options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            gp.fit(self.x, ys)
        return gp

    def _loo_z(self) -> np.ndarray:
        """Standardised leave-one-out residuals, in closed form from the Cholesky factor."""
        gp = self.gp
        k_inv = cho_solve((gp.L_, True), np.eye(len(self.x)))
        diag = np.clip(np.diag(k_inv), 1e-12, None)
        return gp.alpha_ / np.sqrt(diag)

    @property
    def noise_variance(self) -> float:
        """Estimated observation noise variance, in the units of y (the learned white
        noise; a point's reported variance comes on top of it)."""
        return float(self.gp.kernel_.k2.noise_level) * self.std**2

    @property
    def length_scales(self) -> np.ndarray:
        """Length scale per encoded column (of the smooth term for ``rbf+matern``)."""
        shape = self.gp.kernel_.k1
        if self.kernel == "rbf+matern":
            shape = shape.k1
        scales = np.atleast_1d(shape.k2.length_scale)
        return scales if self.groups is None else scales[np.asarray(self.groups, dtype=int)]

    def condition(self, x_new: np.ndarray, y_new: np.ndarray) -> GPModel:
        """Same hyperparameters, extra (fantasy) data: the Kriging-believer update."""
        if len(x_new) == 0:
            return self
        other = GPModel.__new__(GPModel)
        other.__dict__.update(self.__dict__)
        other.x = np.vstack([self.x, x_new])
        other.ys = np.concatenate([self.ys, (np.asarray(y_new) - self.mean) / self.std])
        # A fantasy carries no report of its own: only the learned noise applies to it.
        other.reported = np.concatenate([self.reported, np.zeros(len(x_new))])
        other.alpha = np.concatenate([self.alpha, np.full(len(x_new), JITTER)])
        gp = GaussianProcessRegressor(kernel=self.gp.kernel_, alpha=other.alpha, optimizer=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(other.x, other.ys)
        other.gp = gp
        return other

    def predict_std_units(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Latent mean and standard deviation (noise excluded), standardised units."""
        mu, sd = self.gp.predict(x, return_std=True)
        noise = float(self.gp.kernel_.k2.noise_level)
        var = np.clip(sd**2 - noise, 1e-12, None)
        return mu, np.sqrt(var)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu, sd = self.predict_std_units(x)
        return mu * self.std + self.mean, sd * self.std


class FeasibilityModel:
    """P(experiment succeeds | x), learnt from the experiments that returned ``None``."""

    def __init__(self, x: np.ndarray, ok: np.ndarray, seed: int = 0) -> None:
        self.constant: float | None = None
        if ok.all() or not ok.any():
            self.constant = 1.0 if ok.all() else 0.5
            return
        kernel = ConstantKernel(4.0, (0.1, 100.0)) * RBF(0.3, (0.05, 5.0))
        self.clf = GaussianProcessClassifier(kernel=kernel, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.clf.fit(x, ok.astype(int))

    def predict(self, x: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            return np.full(len(x), self.constant)
        return self.clf.predict_proba(x)[:, 1]
