"""The interlocks: one poll of everything that must stay in range while an experiment runs.

Pressure at every pump (the protocol's limit, or the pump's own when lower), lamp faults,
and the reactor temperature inside the protocol's safety window. A device that cannot be
read trips as ``communication``: an interlock that cannot see is not satisfied.
"""

from __future__ import annotations

from robochem.drivers.errors import CommunicationError, DeviceError, DeviceFault

from ..model import Protocol
from ..platform import Platform
from .lab import Lab
from .states import InterlockTrip

__all__ = ["check_interlocks", "fault_kind"]


async def check_interlocks(lab: Lab, protocol: Protocol, platform: Platform) -> None:
    """One poll of every interlock; raises :class:`InterlockTrip` on the first problem."""
    await _check_pumps(lab, protocol, platform)
    await _check_lamp(lab)
    await _check_temperature(lab, protocol)


async def _check_pumps(lab: Lab, protocol: Protocol, platform: Platform) -> None:
    limit = protocol.safety.max_pressure.value
    for name, pump in lab.pumps().items():
        try:
            status = await pump.status()
        except DeviceFault as exc:
            raise InterlockTrip(fault_kind(exc), str(exc), device=name) from exc
        except DeviceError as exc:
            raise InterlockTrip("communication", str(exc), device=name) from exc
        device_limit = platform.devices[name].limits.max_pressure
        pump_limit = min(limit, device_limit.value) if device_limit is not None else limit
        if status.pressure_bar is not None and status.pressure_bar > pump_limit:
            raise InterlockTrip(
                "overpressure",
                f"{status.pressure_bar:.1f} bar above the limit {pump_limit:g} bar",
                device=name,
            )


async def _check_lamp(lab: Lab) -> None:
    light = lab.light
    if light is None:
        return
    try:
        lamp = await light.lamp_status()
    except DeviceError as exc:
        raise InterlockTrip("communication", str(exc), device=light.name) from exc
    if lamp.faults:
        raise InterlockTrip("lamp", f"lamp fault: {', '.join(lamp.faults)}", device=light.name)


async def _check_temperature(lab: Lab, protocol: Protocol) -> None:
    controller = lab.temperature
    if controller is None:
        return
    try:
        temperature = await controller.get_temperature()
    except DeviceError as exc:
        raise InterlockTrip("communication", str(exc), device=controller.name) from exc
    low, high = (t.value for t in protocol.safety.temperature)
    if not low <= temperature <= high:
        raise InterlockTrip(
            "temperature",
            f"reactor at {temperature:.1f} degC, outside the allowed {low:g}..{high:g} degC",
            device=controller.name,
        )


def fault_kind(exc: DeviceError) -> str:
    """The trip kind a device error reports as."""
    if isinstance(exc, CommunicationError):
        return "communication"
    if isinstance(exc, DeviceFault):
        code = (exc.code or "").lower()
        if "stall" in code:
            return "pump_stall"
        return "device_fault"
    return "device"
