"""When the engine re-shims: the schedule on its own (the engine runs are in test_engine.py)."""

from __future__ import annotations

from robochem.analysis import AnalysisResult
from robochem.analysis.result import IntegralReport, standard_line_width_hz
from robochem.protocols.platform import NmrShim
from robochem.protocols.runtime.shim import ShimSchedule

HOUR = 3600.0


def _spectrum(fwhm_hz: float, broadening_hz: float = 0.5) -> AnalysisResult:
    standard = IntegralReport(
        role="internal_standard", name="TMB", region_ppm=(6.0, 6.2), nuclei=3, integral=1.0,
        window_integral=1.0, integral_sd=0.01, snr=300.0, concentration_M=0.025,
        fwhm_hz=fwhm_hz, n_lines=1, line_centers_ppm=[6.1], phase_residual_deg=0.0,
        fit_chi=1.0)
    result = AnalysisResult.rejected([], source={}, software={},
                                     processing={"line_broadening_hz": broadening_hz})
    result.integrals = {"TMB": standard}
    return result


def test_the_standard_line_width_is_the_fitted_width_less_the_broadening() -> None:
    assert standard_line_width_hz(_spectrum(2.7, 0.5)) == 2.2
    assert standard_line_width_hz(AnalysisResult.rejected([], source={}, software={})) is None


def test_periodic_shims_count_from_the_start_then_from_each_shim() -> None:
    schedule = ShimSchedule(NmrShim.model_validate({"every": "2 h", "at_start": False}))
    assert schedule.due(100.0) is None  # the clock starts here, no shim at the start
    assert schedule.due(100.0 + 1.9 * HOUR) is None
    assert schedule.due(100.0 + 2 * HOUR) == "2.0 h into the campaign"
    schedule.done(100.0 + 2.1 * HOUR)
    assert schedule.due(100.0 + 4.0 * HOUR) is None
    assert schedule.due(100.0 + 4.2 * HOUR) == "2.1 h since the last shim"


def test_a_broad_line_asks_for_a_shim_and_a_useless_one_stops_asking() -> None:
    schedule = ShimSchedule(NmrShim.model_validate({"max_line_width": "2 Hz"}))
    assert schedule.due(0.0) == "before the first experiment"
    schedule.done(0.0)
    assert schedule.observe(_spectrum(2.4)) is None  # 1.9 Hz: fine
    assert schedule.due(600.0) is None
    assert schedule.observe(_spectrum(2.7)) is None  # drifted to 2.2 Hz
    reason = schedule.due(1200.0)
    assert reason == "the internal standard's line is 2.20 Hz wide, above 2 Hz"
    schedule.done(1300.0)
    assert schedule.due(1400.0) is None  # nothing measured since the shim
    warning = schedule.observe(_spectrum(2.6))  # the shim did not help
    assert warning is not None and "no more re-shims for line width" in warning
    assert schedule.due(2000.0) is None
    # a width-triggered shim that worked keeps the trigger armed
    schedule = ShimSchedule(NmrShim.model_validate({"max_line_width": "2 Hz"}))
    schedule.due(0.0)
    schedule.observe(_spectrum(3.0))
    assert schedule.due(50.0) is not None
    schedule.done(100.0)
    assert schedule.observe(_spectrum(1.5)) is None
    schedule.observe(_spectrum(3.0))
    assert schedule.due(900.0) is not None


def test_a_failed_shim_is_due_again() -> None:
    schedule = ShimSchedule(NmrShim.model_validate({}))
    reason = schedule.due(0.0)
    assert reason == "before the first experiment"
    schedule.failed(reason)
    assert schedule.due(500.0) == reason
    schedule.done(600.0)
    assert schedule.due(700.0) is None
