"""Grouped-length-scale kernels: sklearn's RBF and Matern-5/2 when every column is its own
group; one shared length scale for a categorical's one-hot block (the overlap kernel)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import RBF, Matern

from robochem.optimizer import Optimizer
from robochem.optimizer.kernels import GroupedMatern, GroupedRBF
from robochem.optimizer.surrogate import GPModel

RNG = np.random.default_rng(0)
X, Y = RNG.random((7, 4)), RNG.random((3, 4))
SCALES = np.array([0.3, 0.7, 1.1, 0.5])


@pytest.mark.parametrize(
    ("grouped", "plain"),
    [(GroupedRBF(range(4), SCALES), RBF(SCALES)),
     (GroupedMatern(range(4), SCALES), Matern(SCALES, nu=2.5))],
)  # fmt: skip
def test_one_column_per_group_is_the_plain_kernel(grouped: GroupedRBF, plain: RBF) -> None:
    assert np.allclose(grouped(X, Y), plain(X, Y))
    assert np.allclose(grouped(X, eval_gradient=True)[1], plain(X, eval_gradient=True)[1])


@pytest.mark.parametrize("kind", [GroupedRBF, GroupedMatern])
def test_the_gradient_matches_finite_differences(kind: type[GroupedRBF]) -> None:
    kernel = kind([0, 0, 1, 1], np.array([0.4, 0.9]))
    k, gradient = kernel(X, eval_gradient=True)
    for i in range(2):
        theta = kernel.theta.copy()
        theta[i] += 1e-6
        numeric = (kernel.clone_with_theta(theta)(X) - k) / 1e-6
        assert np.allclose(numeric, gradient[:, :, i], atol=1e-5)


def test_two_different_choices_are_equally_far_apart_whichever_they_are() -> None:
    """The overlap kernel: with one length scale per categorical, every pair of different
    choices is equally correlated, so an untried choice is not guessed from which column
    happened to get a short length scale."""
    opt = Optimizer.from_spec(
        {"variables": {"ligand": {"choices": list("abcdefgh")}, "t": {"low": 0, "high": 1}},
         "objectives": {"yield": {"goal": "maximize"}}, "seed": 1}
    )  # fmt: skip
    times = (0.1, 0.5, 0.9, 0.7, 0.3)
    points = [{"ligand": c, "t": t} for c, t in zip("abcab", times, strict=True)]
    x = opt.space.encode(opt.space.from_points(points))
    model = opt._gp_model(seed=1).fit(x, np.array([10.0, 60.0, 30.0, 15.0, 55.0]))
    scales = model.length_scales
    assert len(scales) == 9 and np.allclose(scales[:8], scales[0])  # 8 one-hot, 1 numeric
    untried = opt.space.encode(opt.space.from_points(
        [{"ligand": c, "t": 0.5} for c in "defgh"]))  # fmt: skip
    mean, sd = model.predict(untried)
    assert np.allclose(mean, mean[0]) and np.allclose(sd, sd[0])
    per_choice = GPModel(groups=None).fit(x, np.array([10.0, 60.0, 30.0, 15.0, 55.0]))
    assert len(set(np.round(per_choice.length_scales[:8], 6))) > 1
