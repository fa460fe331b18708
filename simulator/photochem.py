"""Photochemical kinetics for the virtual lab: photons in, concentrations out.

One generic photocatalytic scheme covers the presets in :mod:`robochem.simulator.reactions`
(decatungstate HAT, photoredox radical additions, CF3-radical arene functionalisation):

1. **Photons.** The LED delivers ``photon_flux_umol_s`` (µmol photons/s) into the reactor
   coil, spread evenly over its irradiated volume ``V``: ``q = Φ_LED / V`` (einstein L⁻¹ s⁻¹).
2. **Absorption (Beer-Lambert).** Every absorber ``j`` has a molar absorptivity ``ε_j`` at the
   LED wavelength (Gaussian absorption bands convolved with a Gaussian LED emission line).
   Over the effective path length ``l = (π/4)·ID`` (mean chord of the tube's cross section)
   the mixture absorbs ``A = l·Σ ε_j c_j`` and the photons absorbed by catalyst ``i`` per
   volume and second are ``I_i = q·(1 − 10^−A)·A_i/A``.
3. **Quenching (Stern-Volmer).** The catalyst's excited state is quenched productively by the
   reagent ``B`` (``K_B = k_q·τ_0``), destructively by the product (``K_P``) or decays:
   ``η_B = K_B[B] / (1 + K_B[B] + K_P[P])``. Radicals form at ``g = Σ_i Φ_i·I_i·η_B,i``.
4. **Radical partition.** The reagent-derived radical adds to the substrate (``k_A[A]``), to
   the product (over-reaction, ``k_AP[P]``) or is lost (``k_loss``, pseudo-first-order).
5. **Adduct radical.** It turns over to product (first order, ``k_p``), is trapped by atom
   transfer from the reagent (``ρ·k_p·[B]``) or terminates bimolecularly (``2k_t[X•]²``)
   to a dimer. With ``g* = k_p²/(8k_t)`` the productive rate at a
   local adduct-radical formation rate ``a`` is ``2g*(√(1 + a/g*) − 1)``, averaged in closed
   form over the exponential light profile across the tube (a slab of optical depth
   ``S = A·ln 10``). So more light or a darker solution wastes radicals: efficiency falls
   at high irradiance, which is why more light is not always better.
6. **Losses.** Regio-isomer (a temperature-dependent fraction of the addition), product
   destruction by the excited catalyst, catalyst photobleaching (``Φ_bl·I_i``) and slow dark
   channels (catalyst/reagent deactivation, product decomposition) with Arrhenius rates.

Every product-forming step needs absorbed photons, so nothing forms in the dark. All rate
constants follow Arrhenius, ``k(T) = k_ref·exp(−Ea/R·(1/T − 1/T_ref))``.

Canonical units: s, mL, mol/L (M), degC, µmol photons/s, nm, M⁻¹ cm⁻¹.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.integrate import solve_ivp

__all__ = [
    "R_GAS",
    "Absorber",
    "AbsorptionBand",
    "Arrhenius",
    "Mechanism",
    "Photocatalyst",
    "ReactionModel",
    "ReactorConditions",
    "depth_averaged_productive_rate",
    "epsilon_at",
    "photon_rate_m_s",
]

R_GAS = 8.314462618  # J mol⁻¹ K⁻¹
_LN10 = math.log(10.0)
_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


# -- light --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AbsorptionBand:
    """A Gaussian absorption band: peak ``center_nm``, ``epsilon_max`` (M⁻¹ cm⁻¹), ``fwhm_nm``."""

    center_nm: float
    epsilon_max: float
    fwhm_nm: float


def epsilon_at(
    bands: Sequence[AbsorptionBand], wavelength_nm: float, led_fwhm_nm: float = 0.0
) -> float:
    """Molar absorptivity (M⁻¹ cm⁻¹) seen by an LED centred at ``wavelength_nm``.

    With ``led_fwhm_nm > 0`` each band is averaged over the LED's Gaussian emission line,
    which in closed form is a Gaussian of the summed variances, scaled by the width ratio.
    """
    s_led = led_fwhm_nm * _FWHM_TO_SIGMA
    total = 0.0
    for band in bands:
        s_band = band.fwhm_nm * _FWHM_TO_SIGMA
        var = s_band * s_band + s_led * s_led
        total += (
            band.epsilon_max
            * (s_band / math.sqrt(var))
            * math.exp(-((wavelength_nm - band.center_nm) ** 2) / (2.0 * var))
        )
    return total


def photon_rate_m_s(photon_flux_umol_s: float, irradiated_volume_ml: float) -> float:
    """Photons delivered per litre of irradiated solution per second (einstein L⁻¹ s⁻¹)."""
    return photon_flux_umol_s * 1e-6 / (irradiated_volume_ml * 1e-3)


@dataclass(frozen=True)
class ReactorConditions:
    """What a plug experiences while it sits in the irradiated coil.

    ``photon_flux_umol_s`` is the flux the LED delivers into the whole coil at its current
    output (the LED register map's PHOTON_FLUX), ``irradiated_volume_ml`` the coil volume it
    is spread over and ``inner_diameter_mm`` the tube's inner diameter.
    """

    temperature_c: float
    photon_flux_umol_s: float
    wavelength_nm: float
    irradiated_volume_ml: float = 3.9
    inner_diameter_mm: float = 1.59
    led_fwhm_nm: float = 20.0

    def __post_init__(self) -> None:
        if self.photon_flux_umol_s < 0:
            raise ValueError(f"photon_flux_umol_s must be >= 0, got {self.photon_flux_umol_s}")
        if self.irradiated_volume_ml <= 0 or self.inner_diameter_mm <= 0:
            raise ValueError("irradiated_volume_ml and inner_diameter_mm must be > 0")
        if self.temperature_c <= -273.15:
            raise ValueError(f"temperature_c {self.temperature_c} is below absolute zero")

    @classmethod
    def from_light(
        cls,
        light_percent: float,
        *,
        full_flux_umol_s: float,
        temperature_c: float,
        wavelength_nm: float,
        irradiated_volume_ml: float = 3.9,
        inner_diameter_mm: float = 1.59,
        led_fwhm_nm: float = 20.0,
    ) -> ReactorConditions:
        """Conditions for an LED at ``light_percent`` of its calibrated full-power flux."""
        if not 0.0 <= light_percent <= 100.0:
            raise ValueError(f"light_percent must be within [0, 100], got {light_percent}")
        return cls(
            temperature_c=temperature_c,
            photon_flux_umol_s=full_flux_umol_s * light_percent / 100.0,
            wavelength_nm=wavelength_nm,
            irradiated_volume_ml=irradiated_volume_ml,
            inner_diameter_mm=inner_diameter_mm,
            led_fwhm_nm=led_fwhm_nm,
        )

    @property
    def photon_rate_m_s(self) -> float:
        return photon_rate_m_s(self.photon_flux_umol_s, self.irradiated_volume_ml)

    @property
    def path_length_cm(self) -> float:
        # Mean chord of a circle crossed by parallel light: (π/4)·diameter.
        return math.pi / 4.0 * self.inner_diameter_mm / 10.0

    @property
    def temperature_k(self) -> float:
        return self.temperature_c + 273.15


# -- parameters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrhenius:
    """``value`` at ``t_ref_c`` and activation energy ``ea_kj_mol`` (0 = temperature-free)."""

    value: float
    ea_kj_mol: float = 0.0
    t_ref_c: float = 25.0

    def at(self, temperature_c: float) -> float:
        if self.value == 0.0 or self.ea_kj_mol == 0.0:
            return self.value
        t = temperature_c + 273.15
        t_ref = self.t_ref_c + 273.15
        return self.value * math.exp(-self.ea_kj_mol * 1e3 / R_GAS * (1.0 / t - 1.0 / t_ref))


@dataclass(frozen=True)
class Absorber:
    """A species that only absorbs light (an inner filter): it shades the catalyst."""

    species: str
    bands: tuple[AbsorptionBand, ...]


@dataclass(frozen=True)
class Photocatalyst:
    """A photocatalyst, its spent form and its photophysics.

    ``quantum_yield``: radicals formed per quenching event by the reagent.
    ``stern_volmer_m``: ``K_B = k_q·τ_0`` for quenching by the reagent (M⁻¹), Arrhenius.
    ``product_stern_volmer_m`` / ``product_damage_yield``: quenching by the product and the
    fraction of those events that destroy it (over-irradiation).
    ``bleach_quantum_yield``: catalyst lost per photon absorbed.
    ``dark_deactivation_s``: first-order loss of catalyst without light (1/s), Arrhenius.
    """

    species: str
    spent: str
    bands: tuple[AbsorptionBand, ...]
    quantum_yield: float
    stern_volmer_m: Arrhenius
    product_stern_volmer_m: Arrhenius = Arrhenius(0.0)
    product_damage_yield: float = 0.0
    bleach_quantum_yield: float = 0.0
    dark_deactivation_s: Arrhenius = Arrhenius(0.0)

    def epsilon(self, wavelength_nm: float, led_fwhm_nm: float = 20.0) -> float:
        return _cached_epsilon(self.bands, wavelength_nm, led_fwhm_nm)


@lru_cache(maxsize=4096)
def _cached_epsilon(
    bands: tuple[AbsorptionBand, ...], wavelength_nm: float, led_fwhm_nm: float
) -> float:
    return epsilon_at(bands, wavelength_nm, led_fwhm_nm)


@dataclass(frozen=True)
class Mechanism:
    """The generic scheme's species names and rate parameters (see the module docstring).

    Species roles: substrate ``A`` (limiting), reagent ``B`` (radical precursor), ``product``,
    ``isomer`` (regio-isomer of the product), ``dimer`` (two adduct radicals: 2 A + 2 B),
    ``waste`` (reagent lost without adding, counted per reagent unit), ``overreacted``
    (product + one more reagent unit), ``degraded`` (product destroyed, same atoms) and
    ``transferred`` (adduct radical trapped by atom transfer from the reagent: A + B).
    """

    substrate: str
    reagent: str
    product: str
    catalysts: tuple[Photocatalyst, ...]
    isomer: str = "isomer"
    dimer: str = "dimer"
    waste: str = "waste"
    overreacted: str = "overreacted"
    degraded: str = "degraded"
    #: adduct radical trapped by atom transfer from the reagent (A + B units)
    transferred: str = "transferred"
    #: radical + substrate, M⁻¹ s⁻¹
    k_add_substrate: Arrhenius = Arrhenius(1e6)
    #: radical + product (over-reaction), M⁻¹ s⁻¹
    k_add_product: Arrhenius = Arrhenius(0.0)
    #: radical lost to solvent/fragmentation, s⁻¹
    k_radical_loss: Arrhenius = Arrhenius(1e4)
    #: g* = k_p²/(8 k_t), M/s; ``inf`` switches termination off
    termination_scale_m_s: Arrhenius = Arrhenius(math.inf)
    #: adduct radical: atom transfer from the reagent relative to turnover, k_tr/k_p (M⁻¹)
    adduct_transfer_m: Arrhenius = Arrhenius(0.0)
    #: isomer formed per product molecule (kinetic ratio of the two addition sites)
    isomer_ratio: Arrhenius = Arrhenius(0.0)
    #: dark first-order decomposition of the product, s⁻¹
    k_product_dark: Arrhenius = Arrhenius(0.0)
    #: dark first-order decomposition of the reagent to waste, s⁻¹
    k_reagent_dark: Arrhenius = Arrhenius(0.0)
    inner_filters: tuple[Absorber, ...] = ()

    def species(self) -> tuple[str, ...]:
        names = [
            self.substrate,
            self.reagent,
            self.product,
            self.isomer,
            self.dimer,
            self.waste,
            self.overreacted,
            self.degraded,
            self.transferred,
        ]
        for cat in self.catalysts:
            names += [cat.species, cat.spent]
        for f in self.inner_filters:
            if f.species not in names:
                names.append(f.species)
        if len(set(names)) != len(names):
            raise ValueError(f"species names must be unique, got {names}")
        return tuple(names)


# -- the depth-averaged termination -------------------------------------------------------


def _productive_uniform(a: float, g_star: float) -> float:
    if math.isinf(g_star):
        return a
    x = a / g_star
    # 2g*(√(1+x) − 1) written without cancellation for small x
    return 2.0 * g_star * x / (math.sqrt(1.0 + x) + 1.0)


def _f(x: float) -> float:
    """w − ln(1 + w) − (1 − ln 2) with w = √(1 + x), stable for small x."""
    d = x / (math.sqrt(1.0 + x) + 1.0)  # w − 1
    return d - math.log1p(d / 2.0)


def depth_averaged_productive_rate(a_mean: float, g_star: float, optical_depth: float) -> float:
    """Mean productive rate (M/s) for a mean adduct-radical formation rate ``a_mean``.

    Locally ``p(a) = 2g*(√(1 + a/g*) − 1)``; light decays as ``e^−s`` across the tube
    (``s`` from 0 to ``S = optical_depth``, natural-log units), so the local formation rate
    is ``a_mean·S·e^−s/(1 − e^−S)``. The average over ``s`` is
    ``(4g*/S)·[f(x₀) − f(x₀e^−S)]`` with ``f`` from :func:`_f` and ``x₀`` the wall value.
    """
    if a_mean <= 0.0:
        return 0.0
    if math.isinf(g_star):
        return a_mean
    s = optical_depth
    if s < 1e-4:
        return _productive_uniform(a_mean, g_star)
    x0 = a_mean * s / (-math.expm1(-s) * g_star)
    return 4.0 * g_star / s * (_f(x0) - _f(x0 * math.exp(-s)))


# -- the model ----------------------------------------------------------------------------


@dataclass
class _Constants:
    """Everything in the rate law that depends on the conditions, not on the state."""

    q: float
    path_cm: float
    eps_cat: list[float]
    eps_filter: list[float]
    phi: list[float]
    k_sv: list[float]
    k_sv_p: list[float]
    damage: list[float]
    bleach: list[float]
    cat_dark: list[float]
    k_a: float
    k_ap: float
    k_loss: float
    g_star: float
    rho: float
    iso_frac: float
    k_p_dark: float
    k_b_dark: float


@dataclass
class ReactionModel:
    """Integrates a :class:`Mechanism` for a plug of solution.

    The fluidics world calls :meth:`advance` for each plug and time step while the plug is in
    the irradiated coil (or in the dark with ``photon_flux_umol_s = 0``; only slow dark
    channels act there). Species it does not know (solvent, internal standard) pass through.
    """

    mechanism: Mechanism
    rtol: float = 1e-8
    atol: float = 1e-13
    _species: tuple[str, ...] = field(init=False, repr=False)
    _index: dict[str, int] = field(init=False, repr=False)
    _filters: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._species = self.mechanism.species()
        self._index = {name: i for i, name in enumerate(self._species)}
        self._filters = [self._index[f.species] for f in self.mechanism.inner_filters]

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    # -- conditions-dependent constants ---------------------------------------------------

    def _constants(self, cond: ReactorConditions) -> _Constants:
        m = self.mechanism
        t = cond.temperature_c
        ratio = m.isomer_ratio.at(t)
        return _Constants(
            q=cond.photon_rate_m_s,
            path_cm=cond.path_length_cm,
            eps_cat=[c.epsilon(cond.wavelength_nm, cond.led_fwhm_nm) for c in m.catalysts],
            eps_filter=[
                _cached_epsilon(f.bands, cond.wavelength_nm, cond.led_fwhm_nm)
                for f in m.inner_filters
            ],
            phi=[c.quantum_yield for c in m.catalysts],
            k_sv=[c.stern_volmer_m.at(t) for c in m.catalysts],
            k_sv_p=[c.product_stern_volmer_m.at(t) for c in m.catalysts],
            damage=[c.product_damage_yield for c in m.catalysts],
            bleach=[c.bleach_quantum_yield for c in m.catalysts],
            cat_dark=[c.dark_deactivation_s.at(t) for c in m.catalysts],
            k_a=m.k_add_substrate.at(t),
            k_ap=m.k_add_product.at(t),
            k_loss=m.k_radical_loss.at(t),
            g_star=m.termination_scale_m_s.at(t),
            rho=m.adduct_transfer_m.at(t),
            iso_frac=ratio / (1.0 + ratio),
            k_p_dark=m.k_product_dark.at(t),
            k_b_dark=m.k_reagent_dark.at(t),
        )

    # -- rates ------------------------------------------------------------------------------

    def _kernel(self, k: _Constants):
        """A fast closure: state (list) -> tuple of channel rates (M/s).

        Returns ``(product, isomer, dimer, transfer, overreaction, radical_loss,
        degradation, radicals, bleach_per_catalyst)``. Negative concentrations (solver
        overshoot) count as zero. Plain floats: for a dozen species they beat numpy.
        """
        cats = [
            (
                9 + 2 * i,
                k.path_cm * k.eps_cat[i],
                k.phi[i] * k.k_sv[i],
                k.k_sv[i],
                k.k_sv_p[i],
                k.damage[i] * k.k_sv_p[i],
                k.bleach[i],
                k.cat_dark[i],
            )
            for i in range(len(k.eps_cat))
        ]
        filters = [(j, k.path_cm * e) for j, e in zip(self._filters, k.eps_filter, strict=True)]
        q, k_a, k_ap, k_loss = k.q, k.k_a, k.k_ap, k.k_loss
        g_star, rho, iso = k.g_star, k.rho, k.iso_frac
        k_p_dark, k_b_dark = k.k_p_dark, k.k_b_dark
        expm1, ln10, averaged = math.expm1, _LN10, depth_averaged_productive_rate

        def kernel(y: list[float]) -> tuple:
            a_ = y[0] if y[0] > 0.0 else 0.0
            b_ = y[1] if y[1] > 0.0 else 0.0
            p_ = y[2] if y[2] > 0.0 else 0.0
            absorb = 0.0
            for idx, lε, *_ in cats:
                c = y[idx]
                if c > 0.0:
                    absorb += lε * c
            for j, lε in filters:
                c = y[j]
                if c > 0.0:
                    absorb += lε * c
            # (1 − 10^−A)/A: absorbed photons per unit of absorbance (ln 10 when thin)
            frac = -expm1(-absorb * ln10) / absorb if absorb > 1e-12 else ln10
            g = damage = 0.0
            bleach = []
            for idx, lε, phi_ksv, ksv, ksv_p, dmg_ksv_p, bl, dark in cats:
                c = y[idx] if y[idx] > 0.0 else 0.0
                i_abs = q * frac * lε * c
                denom = 1.0 + ksv * b_ + ksv_p * p_
                g += phi_ksv * i_abs * b_ / denom
                damage += dmg_ksv_p * i_abs * p_ / denom
                bleach.append(bl * i_abs + dark * c)
            trap = k_a * a_ + k_ap * p_ + k_loss
            if g > 0.0 and trap > 0.0:
                g_t = g / trap
                adduct, over, lost = g_t * k_a * a_, g_t * k_ap * p_, g_t * k_loss
            else:
                adduct = over = lost = 0.0
            # first-order fates of the adduct radical: turnover k_p and atom transfer
            # from the reagent ρ·k_p·[B]; both compete with termination (g* scales as k²)
            share = 1.0 + rho * b_
            first_order = averaged(adduct, g_star * share * share, absorb * ln10)
            productive = first_order / share
            return (
                productive * (1.0 - iso),
                productive * iso,
                0.5 * (adduct - first_order),
                first_order - productive,
                over,
                lost + k_b_dark * b_,
                damage + k_p_dark * p_,
                g,
                bleach,
            )

        return kernel

    def _rhs(self, k: _Constants):
        n = len(self._species)
        kernel = self._kernel(k)
        n_cat = len(k.eps_cat)

        def rhs(_t: float, y: np.ndarray) -> list[float]:
            prod, iso, dim, tr, over, lost, deg, _g, bleach = kernel(y.tolist())
            used = prod + iso + 2.0 * dim + tr
            d = [-used, -used - over - lost, prod - over - deg, iso, dim, lost, over, deg, tr]
            for i in range(n_cat):
                d += [-bleach[i], bleach[i]]  # catalyst, spent catalyst
            d += [0.0] * (n - len(d))  # inner filters that are not reactive species
            return d

        return rhs

    # -- public API -------------------------------------------------------------------------

    def vector(self, concentrations: Mapping[str, float]) -> np.ndarray:
        """State vector in :attr:`species` order; missing species are 0."""
        y = np.zeros(len(self._species))
        for name, value in concentrations.items():
            i = self._index.get(name)
            if i is not None:
                if not value >= 0.0 or not math.isfinite(value):
                    raise ValueError(f"concentration of {name!r} must be >= 0, got {value!r}")
                y[i] = value
        return y

    def rates(
        self, concentrations: Mapping[str, float], conditions: ReactorConditions
    ) -> dict[str, float | list[float]]:
        """Instantaneous rates (M/s) of every channel: for checks and what-if questions."""
        kernel = self._kernel(self._constants(conditions))
        v = self.vector(concentrations).tolist()
        prod, iso, dim, tr, over, lost, deg, g, bleach = kernel(v)
        return {
            "product": prod,
            "isomer": iso,
            "dimer": dim,
            "transfer": tr,
            "overreaction": over,
            "radical_loss": lost,
            "degradation": deg,
            "radicals": g,
            "bleach": bleach,
        }

    def integrate(
        self,
        concentrations: Mapping[str, float],
        t_s: float | Sequence[float],
        conditions: ReactorConditions,
    ) -> np.ndarray:
        """States at the time(s) ``t_s`` (s), shape ``(len(times), n_species)``."""
        times = np.atleast_1d(np.asarray(t_s, dtype=float))
        if np.any(times < 0) or np.any(np.diff(times) < 0):
            raise ValueError("times must be >= 0 and increasing")
        y0 = self.vector(concentrations)
        t_end = float(times[-1])
        if t_end == 0.0:
            return np.tile(y0, (times.size, 1))
        k = self._constants(conditions)
        sol = solve_ivp(
            self._rhs(k),
            (0.0, t_end),
            y0,
            method="LSODA",  # switches to BDF when stiff, Adams otherwise
            t_eval=times,
            rtol=self.rtol,
            atol=self.atol,
        )
        if not sol.success:
            raise RuntimeError(f"kinetics integration failed: {sol.message}")
        return np.clip(sol.y.T, 0.0, None)

    def trajectory(
        self,
        concentrations: Mapping[str, float],
        horizon_s: float,
        conditions: ReactorConditions,
    ) -> Callable[[float], dict[str, float]]:
        """Concentrations at any time in [0, ``horizon_s``] from one integration (the
        solver's dense output, within its tolerances): for many plugs that start alike and
        differ only in how long they saw the light."""
        if not horizon_s > 0.0 or not math.isfinite(horizon_s):
            raise ValueError(f"horizon_s must be a finite number > 0, got {horizon_s!r}")
        y0 = self.vector(concentrations)
        sol = solve_ivp(
            self._rhs(self._constants(conditions)),
            (0.0, horizon_s),
            y0,
            method="LSODA",
            dense_output=True,
            rtol=self.rtol,
            atol=self.atol,
        )
        if not sol.success:
            raise RuntimeError(f"kinetics integration failed: {sol.message}")
        dense = sol.sol

        def at(t_s: float) -> dict[str, float]:
            if not 0.0 <= t_s <= horizon_s:
                raise ValueError(f"t_s must be within [0, {horizon_s}], got {t_s!r}")
            state = y0 if t_s == 0.0 else np.clip(dense(t_s), 0.0, None)
            return self._merged(concentrations, state)

        return at

    def advance(
        self,
        concentrations: Mapping[str, float],
        dt_s: float,
        conditions: ReactorConditions,
    ) -> dict[str, float]:
        """Concentrations (M) after ``dt_s`` seconds under ``conditions``.

        Keys the model does not know are returned unchanged; known species missing from
        the input start at 0 and appear in the output.
        """
        if not dt_s >= 0.0 or not math.isfinite(dt_s):
            raise ValueError(f"dt_s must be a finite number >= 0, got {dt_s!r}")
        return self._merged(concentrations, self.integrate(concentrations, dt_s, conditions)[-1])

    def _merged(self, concentrations: Mapping[str, float], state: np.ndarray) -> dict[str, float]:
        """``concentrations`` with the model's species replaced by ``state``."""
        out = dict(concentrations)
        out.update(zip(self._species, state.tolist(), strict=True))
        return out

    # -- bookkeeping for tests and docs ------------------------------------------------------

    def conserved(self, concentrations: Mapping[str, float]) -> dict[str, float]:
        """Substrate units, reagent units and each catalyst's total: constant in time."""
        y = self.vector(concentrations)
        a_units = y[0] + y[2] + y[3] + 2 * y[4] + y[6] + y[7] + y[8]
        b_units = y[1] + y[2] + y[3] + 2 * y[4] + y[5] + 2 * y[6] + y[7] + y[8]
        out = {"substrate_units": float(a_units), "reagent_units": float(b_units)}
        for i, cat in enumerate(self.mechanism.catalysts):
            out[cat.species] = float(y[9 + 2 * i] + y[10 + 2 * i])
        return out
