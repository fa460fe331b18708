"""Photochemical kinetics: analytic limits, conservation, darkness, temperature."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import lambertw

from robochem.simulator.photochem import (
    AbsorptionBand,
    Arrhenius,
    Mechanism,
    Photocatalyst,
    ReactionModel,
    ReactorConditions,
    depth_averaged_productive_rate,
    epsilon_at,
)
from robochem.simulator.reactions import PRESETS, model_for


def _toy(k_sv: float) -> tuple[ReactionModel, ReactorConditions, float]:
    """One stable catalyst, nothing else absorbs: constant photon absorption."""
    cat = Photocatalyst(
        species="cat",
        spent="cat_spent",
        bands=(AbsorptionBand(450.0, 1.0e4, 60.0),),
        quantum_yield=0.8,
        stern_volmer_m=Arrhenius(k_sv),
    )
    model = ReactionModel(Mechanism(substrate="A", reagent="B", product="P", catalysts=(cat,)))
    cond = ReactorConditions(
        temperature_c=25.0, photon_flux_umol_s=100.0, wavelength_nm=450.0,
        irradiated_volume_ml=1.0, inner_diameter_mm=1.0, led_fwhm_nm=0.0,
    )  # fmt: skip
    eps = epsilon_at(cat.bands, 450.0)
    absorbance = eps * 1e-3 * cond.path_length_cm
    i_abs = cond.photon_rate_m_s * (1.0 - 10.0 ** (-absorbance))  # Beer-Lambert
    return model, cond, cat.quantum_yield * i_abs


def test_first_order_limit_matches_exp() -> None:
    # Reagent consumption is Φ·I_abs·K[B]/(1 + K[B]); with K[B] = 1e-5 that is first order.
    model, cond, phi_i = _toy(k_sv=1e-3)
    b0 = 0.01
    k1 = phi_i * 1e-3
    times = np.linspace(0.0, 2.0 / k1, 9)
    states = model.integrate({"A": 0.1, "B": b0, "cat": 1e-3}, times, cond)
    b = states[:, model.species.index("B")]
    assert b[-1] / b0 == pytest.approx(math.exp(-2.0), rel=1e-3)
    np.testing.assert_allclose(b / b0, np.exp(-k1 * times), rtol=1e-4, atol=0)


def test_saturating_quenching_matches_lambert_w() -> None:
    # dB/dt = −c·K·B/(1 + K·B) has B(t) = W(K·B0·exp(K·B0 − c·K·t))/K exactly.
    k_sv = 50.0
    model, cond, c = _toy(k_sv=k_sv)
    b0 = 0.02
    times = np.linspace(0.0, 0.6, 7)
    b = model.integrate({"A": 0.1, "B": b0, "cat": 1e-3}, times, cond)[:, 1]
    exact = np.real(lambertw(k_sv * b0 * np.exp(k_sv * b0 - c * k_sv * times))) / k_sv
    assert exact[-1] < 0.5 * b0  # the test covers a real change
    np.testing.assert_allclose(b, exact, rtol=1e-6, atol=1e-12)


def test_epsilon_convolution_keeps_band_area() -> None:
    band = (AbsorptionBand(400.0, 1.0e4, 50.0),)
    assert epsilon_at(band, 400.0) == pytest.approx(1.0e4)
    grid = np.linspace(150.0, 650.0, 5001)
    narrow = [epsilon_at(band, w) for w in grid]
    broad = [epsilon_at(band, w, led_fwhm_nm=30.0) for w in grid]
    assert np.trapezoid(broad, grid) == pytest.approx(np.trapezoid(narrow, grid), rel=1e-6)
    assert max(broad) < max(narrow)


@pytest.mark.parametrize("a_mean", [1e-7, 1e-4, 3e-3, 0.1])
@pytest.mark.parametrize("depth", [1e-5, 0.3, 2.0, 9.0])
def test_depth_average_matches_quadrature(a_mean: float, depth: float) -> None:
    g_star = 1e-3

    def local(s: float) -> float:
        a = a_mean * depth * math.exp(-s) / -math.expm1(-depth)
        return 2.0 * g_star * (math.sqrt(1.0 + a / g_star) - 1.0)

    numeric = quad(local, 0.0, depth, epsabs=0, epsrel=1e-12)[0] / depth
    assert depth_averaged_productive_rate(a_mean, g_star, depth) == pytest.approx(numeric, rel=1e-7)
    # termination only ever wastes radicals
    assert depth_averaged_productive_rate(a_mean, g_star, depth) <= a_mean * (1 + 1e-12)
    assert depth_averaged_productive_rate(a_mean, math.inf, depth) == a_mean


def test_arrhenius_direction_and_reference() -> None:
    k = Arrhenius(2.0, 50.0, t_ref_c=25.0)
    assert k.at(25.0) == pytest.approx(2.0)
    assert k.at(35.0) > k.at(25.0) > k.at(15.0)
    expected = 2.0 * math.exp(-50e3 / 8.314462618 * (1 / 308.15 - 1 / 298.15))
    assert k.at(35.0) == pytest.approx(expected)
    assert Arrhenius(2.0, 0.0).at(80.0) == 2.0


def test_hotter_runs_faster_in_the_hat_preset() -> None:
    model = model_for(PRESETS["hat-alkylation"])
    start = {"BMN": 0.1, "THF": 0.5, "TBADT": 0.002}

    def product_after_60_s(temperature_c: float) -> float:
        cond = ReactorConditions.from_light(
            50.0, full_flux_umol_s=60.0, temperature_c=temperature_c, wavelength_nm=365.0
        )
        return model.advance(start, 60.0, cond)["P_alpha"]

    assert product_after_60_s(50.0) > product_after_60_s(30.0) > product_after_60_s(10.0)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_no_reaction_in_the_dark(name: str) -> None:
    preset = PRESETS[name]
    catalyst = next(iter(preset.catalysts.values()))
    model = model_for(preset, next(iter(preset.catalysts)))
    start = {preset.substrate: 0.1, preset.reagent: 0.2, catalyst.species: 0.002, "solvent": 9.0}
    dark = ReactorConditions(
        temperature_c=25.0, photon_flux_umol_s=0.0, wavelength_nm=preset.wavelength_nm
    )
    out = model.advance(start, 1200.0, dark)
    assert out[preset.product] == 0.0
    assert out[preset.substrate] == pytest.approx(0.1, abs=1e-12)
    assert out["solvent"] == 9.0  # unknown species pass through


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_mass_balance(name: str) -> None:
    preset = PRESETS[name]
    for choice, catalyst in preset.catalysts.items():
        model = model_for(preset, choice)
        start = {preset.substrate: 0.1, preset.reagent: 0.25, catalyst.species: 0.003}
        cond = ReactorConditions.from_light(
            100.0, full_flux_umol_s=preset.full_flux_umol_s, temperature_c=45.0,
            wavelength_nm=preset.wavelength_nm,
        )  # fmt: skip
        end = model.advance(start, 3600.0, cond)
        assert end[preset.substrate] < 0.099  # something happened
        before, after = model.conserved(start), model.conserved(end)
        for key, value in before.items():
            assert after[key] == pytest.approx(value, rel=1e-7, abs=1e-12), key


def test_advance_validates_and_is_identity_for_zero_time() -> None:
    model = model_for(PRESETS["hat-alkylation"])
    cond = ReactorConditions(temperature_c=25.0, photon_flux_umol_s=30.0, wavelength_nm=365.0)
    start = {"BMN": 0.1, "THF": 0.5, "TBADT": 0.002}
    assert model.advance(start, 0.0, cond)["BMN"] == 0.1
    with pytest.raises(ValueError, match="dt_s"):
        model.advance(start, -1.0, cond)
    with pytest.raises(ValueError, match="BMN"):
        model.advance({"BMN": -0.1}, 1.0, cond)
    with pytest.raises(ValueError, match="photon_flux"):
        ReactorConditions(temperature_c=25.0, photon_flux_umol_s=-1.0, wavelength_nm=365.0)


def test_advance_in_steps_equals_one_step() -> None:
    # the fluidics world advances a plug in many small steps
    model = model_for(PRESETS["cf3-trifluoromethylation"])
    cond = ReactorConditions(temperature_c=25.0, photon_flux_umol_s=25.0, wavelength_nm=450.0)
    start = {"NMP": 0.1, "CF3SO2Cl": 0.2, "Ru(bpy)3Cl2": 5e-4}
    one = model.advance(start, 300.0, cond)
    many = dict(start)
    for _ in range(10):
        many = model.advance(many, 30.0, cond)
    for key in one:
        assert many[key] == pytest.approx(one[key], rel=1e-5, abs=1e-10), key


def test_rates_are_reported_by_name() -> None:
    model = model_for(PRESETS["hat-alkylation"])
    cond = ReactorConditions(temperature_c=25.0, photon_flux_umol_s=30.0, wavelength_nm=365.0)
    rates = model.rates({"BMN": 0.1, "THF": 0.5, "TBADT": 0.002}, cond)
    assert rates["product"] > rates["isomer"] > 0
    assert rates["radicals"] >= rates["product"]


def test_one_trajectory_serves_every_exposure_time() -> None:
    """The world integrates a start mix once and reads every plug's exposure off it: the
    readings must be what integrating each plug alone gives."""
    model = model_for(PRESETS["hat-alkylation"])
    start = {"BMN": 0.1, "THF": 0.5, "TBADT": 0.002, "TMB": 0.03}
    cond = ReactorConditions.from_light(
        80.0, full_flux_umol_s=60.0, temperature_c=30.0, wavelength_nm=365.0
    )
    trajectory = model.trajectory(start, 900.0, cond)
    for t in (0.0, 0.5, 17.0, 108.5, 420.0, 900.0):
        alone = model.advance(start, t, cond)
        read = trajectory(t)
        assert set(read) == set(alone)
        for name, value in alone.items():
            assert read[name] == pytest.approx(value, rel=1e-6, abs=1e-12), (t, name)
    assert trajectory(420.0)["P_alpha"] > 0.01  # a real conversion, not a trivial check
    with pytest.raises(ValueError, match="within"):
        trajectory(900.5)
