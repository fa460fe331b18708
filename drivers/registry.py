"""Driver names -> classes, and ``open_device``, the one way to get a connected device.

Entries are "module:Class" strings imported on first use, so importing robochem.drivers
does not import every vendor's module (and pymodbus, lxml, ...).
"""

from __future__ import annotations

import importlib
from collections.abc import Generator
from typing import Any

from robochem.drivers.base import Device

DRIVERS: dict[str, str] = {
    "knauer-azura": "robochem.drivers.knauer:KnauerAzuraPump",
    "knauer-valve": "robochem.drivers.knauer:KnauerValve",
    "harvard-elite11": "robochem.drivers.harvard:Elite11Pump",
    "chemyx-fusion": "robochem.drivers.chemyx:ChemyxFusionPump",
    "omron-e5cc": "robochem.drivers.omron:OmronE5CC",
    "modbus-led": "robochem.drivers.led:ModbusLedSource",
    "modbus-photoreactor": "robochem.drivers.led:ModbusPhotoreactor",
    "manson-hcs": "robochem.drivers.manson:MansonLedSupply",
    "spinsolve": "robochem.drivers.spinsolve:SpinsolveNMR",
}


def driver_class(driver: str) -> type[Device]:
    try:
        target = DRIVERS[driver]
    except KeyError:
        raise ValueError(f"unknown driver {driver!r}; known drivers: {sorted(DRIVERS)}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls  # type: ignore[no-any-return]


class _Opening:
    """``await open_device(...)`` or ``async with open_device(...) as dev``."""

    def __init__(self, device: Device) -> None:
        self.device = device

    def __await__(self) -> Generator[Any, None, Device]:
        yield from self.device.connect().__await__()
        return self.device

    async def __aenter__(self) -> Any:
        await self.device.connect()
        return self.device

    async def __aexit__(self, *exc: object) -> None:
        await self.device.disconnect()


def open_device(driver: str, url: str, *, name: str | None = None, **options: Any) -> Any:
    """Build the driver for ``url`` and connect it (leaving the device in a safe state).

    ``options`` go to the driver's constructor (e.g. ``head_ml=10`` for a Knauer pump,
    ``diameter_mm=14.57`` for a syringe pump); unknown options raise TypeError.
    """
    device = driver_class(driver)(url, name=name, **options)  # type: ignore[call-arg]
    return _Opening(device)
