"""The platform file: which devices a lab has, their limits, and how the liquid flows.

A protocol says *what* to run; the platform says *with what*. The same protocol validates
against ``protocols/platforms/simulated.yaml`` and against a real lab's file.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import InitErrorDetails

# The drivers' declaration of their required options: a pure table, no driver I/O.
from robochem.drivers.options import missing_options

from .units import Quantity, parse_quantity, quantity_type

__all__ = [
    "PLATFORM_VERSION",
    "Collection",
    "DeviceLimits",
    "DeviceSpec",
    "Fluidics",
    "GasInlet",
    "Nmr",
    "NmrShim",
    "Platform",
    "PumpLine",
    "SafeState",
]

PLATFORM_VERSION = 1
#: placeholder URL of a simulated platform: filled in by ``robochem sim --platform-out``
SIM_URL = "sim"

Volume = quantity_type("volume", minimum=0.0, exclusive=True)
VolumeOrZero = quantity_type("volume", minimum=0.0)
Flow = quantity_type("flow", minimum=0.0)
Pressure = quantity_type("pressure", minimum=0.0, exclusive=True)
PressureOrZero = quantity_type("pressure", minimum=0.0)
Temperature = quantity_type("temperature")
Percent = quantity_type("percent", minimum=0.0)
Length = quantity_type("length", minimum=0.0, exclusive=True)
Wavelength = quantity_type("wavelength", minimum=0.0, exclusive=True)
LineWidth = quantity_type("frequency", minimum=0.0, exclusive=True)
Duration = quantity_type("time", minimum=0.0, exclusive=True)
Ppm = Annotated[float, Field(ge=-50.0, le=250.0)]


def _off_or_temperature(raw: object) -> Quantity | None:
    """``off`` (YAML reads a bare off as false) or a temperature such as ``25 degC``."""
    if raw is None or raw is False or (isinstance(raw, str) and raw.strip().lower() == "off"):
        return None
    if isinstance(raw, Quantity):
        return raw
    if raw is True:
        raise ValueError("expected off or a temperature such as '25 degC', got true")
    value = parse_quantity(raw, "temperature")
    return Quantity(value, raw.strip() if isinstance(raw, str) else f"{raw:g} degC", "temperature")


#: ``off``, or the setpoint the reactor holds in safe state.
SafeTemperature = Annotated[
    Quantity | None,
    PlainValidator(_off_or_temperature),
    PlainSerializer(lambda q: "off" if q is None else q.text, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [{"const": "off"}, {"type": "string", "examples": ["25 degC"]}],
            "description": "off (temperature control stopped) or a setpoint, e.g. '25 degC'",
        }
    ),
]

_NAME = r"^[A-Za-z][A-Za-z0-9_-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceLimits(_Strict):
    """What a device can do. Only the limits that apply to the device are given."""

    flow: tuple[Flow, Flow] | None = Field(
        default=None, description="[min, max] flow rate a pump can deliver when running"
    )
    max_pressure: Pressure | None = Field(default=None, description="pressure rating")
    light: tuple[Percent, Percent] | None = Field(
        default=None, description="[min, max] light intensity setpoint"
    )
    temperature: tuple[Temperature, Temperature] | None = Field(
        default=None, description="[min, max] temperature setpoint"
    )
    wavelengths: list[Wavelength] | None = Field(
        default=None, description="LED wavelengths the reactor has"
    )
    positions: list[str] | None = Field(default=None, description="valve position names")


class DeviceSpec(_Strict):
    driver: str = Field(description="driver name, see `robochem.drivers.registry.DRIVERS`")
    url: str = Field(
        description="where the device answers (serial://, tcp://, modbus-tcp://...); "
        f"'{SIM_URL}' in a simulated platform means 'given by the running simulator'"
    )
    options: dict[str, object] = Field(default_factory=dict, description="driver options")
    role: str = ""
    limits: DeviceLimits = Field(default_factory=DeviceLimits)


class PumpLine(_Strict):
    """A pump feeding the mixer; ``dead_volume`` is primed once per campaign."""

    dead_volume: VolumeOrZero = Field(
        default=Quantity(0.0, "0 mL", "volume"),
        description="volume from the stock to the mixer, used up once by priming",
    )
    selector: str | None = Field(
        default=None,
        description="valve choosing which stock this pump draws; its stocks give their port",
    )


class Reactor(_Strict):
    device: str
    volume: Volume = Field(description="irradiated volume of the reactor coil")
    inner_diameter: Length | None = None


class NmrShim(_Strict):
    """When the engine shims the NMR. The field drifts after a shim and the lines broaden;
    a broad line overlaps its neighbours and costs the analysis accuracy (docs/virtual-lab.md,
    section 6), so a long campaign re-shims instead of measuring on through the drift."""

    method: Literal["QuickShim", "PowerShim"] = Field(
        default="QuickShim", description="how thoroughly to shim (CheckShim only measures)"
    )
    sample_reference: Ppm | None = Field(
        default=None,
        description="shift (ppm) of the solvent line to shim on, with the liquid in the flow "
        "cell (Spinsolve 'SHIM 1H SAMPLE'); unset: the shim-standard form (*ShimRequest)",
    )
    max_line_width: LineWidth | None = Field(
        default=None,
        description="re-shim before the next experiment once the internal standard's line "
        "(natural width at half height) is broader than this",
    )
    every: Duration | None = Field(
        default=None, description="re-shim when this long has passed since the last shim"
    )
    at_start: bool = Field(default=True, description="shim before the first experiment")


class Nmr(_Strict):
    device: str
    cell_volume: Volume
    transfer_volume: VolumeOrZero = Field(
        description="tubing volume from the reactor outlet to the NMR flow cell"
    )
    shim: NmrShim | None = Field(
        default=None, description="automatic shimming; unset: the engine never shims"
    )


class Collection(_Strict):
    valve: str
    waste: str = Field(description="valve position sending the flow to waste")
    collect: str = Field(description="valve position sending the flow to the collection vessel")


class GasInlet(_Strict):
    device: str = Field(description="mass-flow controller or valve making the gas segments")


class Fluidics(_Strict):
    """The flow path: pumps -> mixer -> reactor -> NMR -> collection valve."""

    pumps: dict[str, PumpLine] = Field(
        description="the pumps that feed the mixer; each protocol stock names one of them"
    )
    mixer_volume: VolumeOrZero = Field(default=Quantity(0.0, "0 mL", "volume"))
    reactor: Reactor
    nmr: Nmr
    outlet_volume: VolumeOrZero = Field(default=Quantity(0.0, "0 mL", "volume"))
    collection: Collection | None = None
    gas_inlet: GasInlet | None = None
    back_pressure: PressureOrZero | None = Field(
        default=None, description="back-pressure regulator setting"
    )


class SafeState(_Strict):
    """What safe state does beyond stopping the flow and the light (docs/engine.md)."""

    temperature: SafeTemperature = Field(
        default=None,
        description="at the end of a run, on a pause and when a controller died: 'off' "
        "stops temperature control; a temperature (e.g. '25 degC') holds the reactor there "
        "(within the reactor's temperature limits)",
    )


class Platform(_Strict):
    """A platform file."""

    robochem: Literal[1] = Field(description="platform file format version")
    name: str
    simulated: bool = False
    reaction: str | None = Field(
        default=None, description="simulated platforms: the virtual-lab reaction preset"
    )
    clock: dict[str, float] | None = Field(
        default=None, description="written by `robochem sim`: the simulated clock"
    )
    state_url: str | None = Field(
        default=None,
        pattern=r"^(sim|https?://\S+)$",
        description="simulated platforms: where the virtual lab answers GET /state with what "
        f"every device physically does (written by `robochem sim`; '{SIM_URL}' before it runs)",
    )
    devices: dict[str, DeviceSpec] = Field(min_length=1)
    fluidics: Fluidics
    safe_state: SafeState = Field(
        default_factory=SafeState, description="safe state beyond flow and light off"
    )

    @field_validator("devices")
    @classmethod
    def _required_options(
        cls, devices: dict[str, DeviceSpec], info: ValidationInfo
    ) -> dict[str, DeviceSpec]:
        """Every device gives the options its driver declares as required (on real
        hardware; a simulated platform may rely on the documented simulator values)."""
        simulated = bool(info.data.get("simulated", False))
        errors: list[InitErrorDetails] = []
        for name, spec in devices.items():
            for option in missing_options(spec.driver, spec.options, simulated=simulated):
                where = "" if not option.hardware_only else " on real hardware"
                message = (
                    f"device {name!r} (driver {spec.driver}) needs option "
                    f"{option.name!r} ({option.meaning}){where}; add it under options, "
                    f"e.g. options: {{{option.name}: ...}}"
                )
                errors.append(
                    InitErrorDetails(
                        type="value_error",
                        loc=(name, "options"),
                        input=dict(spec.options),
                        ctx={"error": ValueError(message)},
                    )
                )
        if errors:
            # Raised as a ValidationError so each issue points at its device's options.
            raise ValidationError.from_exception_data("Platform", errors)
        return devices

    def device_names(self) -> list[str]:
        return list(self.devices)
