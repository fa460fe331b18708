"""Device drivers speaking each vendor's wire protocol (``robochem.drivers``).

from robochem.drivers import open_device
async with open_device("knauer-azura", "tcp://192.168.1.20:10001") as pump:
    await pump.set_flow_rate(1.5)
    await pump.start()
"""

from robochem.drivers.base import (
    Acquisition,
    Device,
    LampStatus,
    LightSource,
    NMRSpectrometer,
    Photoreactor,
    Pump,
    PumpState,
    PumpStatus,
    SyringePump,
    TemperatureController,
    TemperatureStatus,
    Valve,
)
from robochem.drivers.errors import (
    CommunicationError,
    ConnectionLost,
    DeviceError,
    DeviceFault,
    GarbledReply,
    ReplyTimeout,
    SetpointRejected,
)
from robochem.drivers.registry import DRIVERS, driver_class, open_device

__all__ = [
    "DRIVERS",
    "Acquisition",
    "CommunicationError",
    "ConnectionLost",
    "Device",
    "DeviceError",
    "DeviceFault",
    "GarbledReply",
    "LampStatus",
    "LightSource",
    "NMRSpectrometer",
    "Photoreactor",
    "Pump",
    "PumpState",
    "PumpStatus",
    "ReplyTimeout",
    "SetpointRejected",
    "SyringePump",
    "TemperatureController",
    "TemperatureStatus",
    "Valve",
    "driver_class",
    "open_device",
]
