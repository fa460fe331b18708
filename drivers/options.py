"""Options a driver cannot do without: a pure declaration (no I/O, no driver import).

The platform language checks a platform file against it (``protocols/platform.py``), the
lab passes the documented simulator values on simulated platforms (``protocols/runtime/
lab.py``), and each driver class carries its own entry as ``required_options``. A syringe
pump on real hardware needs its syringe: left to whatever the pump's menu holds, every
flow rate would be wrong by the square of the diameter error, and a 10 mL default on a
1 mL syringe overruns it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "REQUIRED_OPTIONS",
    "RequiredOption",
    "missing_options",
    "options_for",
    "required_options",
]


@dataclass(frozen=True)
class RequiredOption:
    """A driver option a platform file must give.

    ``simulated``: on a simulated platform the option may be left out and this value is
    used instead (what the reference simulator holds); None: the simulated device's own
    setting is used. ``hardware_only=False``: required on simulated platforms too.
    """

    name: str
    meaning: str
    simulated: float | None = None
    hardware_only: bool = True


#: The simulators' syringe: 14.567 mm, 10 mL (simulator/chemyx.py, simulator/harvard.py).
_SYRINGE = (
    RequiredOption("diameter_mm", "the syringe's inner diameter in mm"),
    RequiredOption("syringe_volume_ml", "the syringe's volume in mL", simulated=10.0),
)

#: driver name -> the options it requires (drivers absent here require none)
REQUIRED_OPTIONS: Mapping[str, tuple[RequiredOption, ...]] = {
    "chemyx-fusion": _SYRINGE,
    "harvard-elite11": _SYRINGE,
    "manson-hcs": (
        RequiredOption("led_voltage_v", "the LED's compliance voltage in V", hardware_only=False),
        RequiredOption("max_current_a", "the LED current at 100 % in A", hardware_only=False),
    ),
}


def required_options(driver: str) -> tuple[RequiredOption, ...]:
    return tuple(REQUIRED_OPTIONS.get(driver, ()))


def missing_options(
    driver: str, options: Mapping[str, Any], *, simulated: bool
) -> list[RequiredOption]:
    """The required options of ``driver`` that ``options`` lacks on such a platform."""
    return [
        option
        for option in required_options(driver)
        if option.name not in options
        and not (simulated and option.hardware_only)
    ]


def options_for(driver: str, options: Mapping[str, Any], *, simulated: bool) -> dict[str, Any]:
    """The constructor options for ``driver``: ``options`` plus, on a simulated platform,
    the documented simulator values of required options it leaves out."""
    out = dict(options)
    if simulated:
        for option in required_options(driver):
            if option.simulated is not None:
                out.setdefault(option.name, option.simulated)
    return out
