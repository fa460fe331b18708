"""Request and response bodies of the REST API (they make /openapi.json complete)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Finite = Annotated[float, Field(allow_inf_nan=False)]
DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]
# No NUL or other control characters except tab and newlines: PostgreSQL refuses NUL in text.
NO_CONTROL = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
NAME = r"^[A-Za-z0-9_.@-]{1,100}$"


class Message(BaseModel):
    detail: str


class Problem(BaseModel):
    """A 422: FastAPI's validation errors (a list) or a refusal (text); a protocol with
    errors also lists its issues with line numbers."""

    detail: str | list[dict[str, Any]]
    valid: bool | None = None
    issues: list[Issue] | None = None


class Me(BaseModel):
    name: str
    role: str
    via: str


class CampaignCounts(BaseModel):
    total: int = 0
    by_status: dict[str, int] = Field(default_factory=dict)


class ActiveCampaign(BaseModel):
    id: int
    name: str
    status: str
    experiments_done: int
    planned_experiments: int | None


class Status(BaseModel):
    platform: str | None
    lab_attached: bool
    engine_attached: bool
    time: dt.datetime
    campaigns: CampaignCounts
    active: list[ActiveCampaign]


class Device(BaseModel):
    name: str
    driver: str
    kind: str
    connected: bool
    readings: dict[str, Any]
    faults: list[str]
    controls: list[str]
    positions: list[str]
    limits: dict[str, Any]
    updated_at: dt.datetime | None


class FlowCommand(BaseModel):
    # strict: a JSON true must not become 1.0 mL/min
    model_config = ConfigDict(extra="forbid", strict=True)
    ml_min: Finite = Field(ge=0, le=1000, description="Flow rate in mL/min (0 stops the pump).")


class LightCommand(BaseModel):
    # strict: a JSON true must not become 1.0 mL/min
    model_config = ConfigDict(extra="forbid", strict=True)
    percent: Finite = Field(ge=0, le=100, description="Light intensity in percent.")


class TemperatureCommand(BaseModel):
    # strict: a JSON true must not become 1.0 mL/min
    model_config = ConfigDict(extra="forbid", strict=True)
    celsius: Finite = Field(ge=-100, le=300, description="Setpoint in degrees Celsius.")


class ValveCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    position: str = Field(
        min_length=1, max_length=50, pattern=NO_CONTROL, description="As printed on the valve."
    )


class CommandResult(BaseModel):
    ok: bool = True
    detail: str


class CampaignSummary(BaseModel):
    id: int
    name: str
    status: str
    status_reason: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    experiments_total: int
    experiments_done: int
    experiments_failed: int
    planned_experiments: int | None
    progress: float | None = Field(description="Fraction 0..1 of planned experiments done.")
    best_yield_percent: float | None


class CurrentActivity(BaseModel):
    experiment_id: int | None
    experiment_index: int | None
    step: str | None


class CampaignDetail(CampaignSummary):
    protocol_sha256: str
    summary: dict[str, Any]
    variables: list[str]
    current: CurrentActivity
    eta: dt.datetime | None


class ExperimentRow(BaseModel):
    id: int
    index: int
    status: str
    status_reason: str | None
    conditions: dict[str, Any]
    repeat_of_id: int | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    measurement_id: int | None
    yield_percent: float | None
    conversion_percent: float | None
    throughput_mmol_h: float | None
    qc_status: str | None
    qc_reasons: list[Any]
    nmr_line_width_hz: float | None = Field(
        default=None,
        description="the internal standard's natural line width in this experiment's "
        "spectrum (Hz): how well the NMR was shimmed",
    )
    nmr_shimmed_before: bool = Field(
        default=False, description="the engine shimmed the NMR before running this experiment"
    )


class ExperimentDetail(ExperimentRow):
    campaign_id: int
    result: dict[str, Any] | None = Field(description="Full analysis result, without the plot.")


class SpectrumRegion(BaseModel):
    name: str
    role: str | None
    lo: float | None
    hi: float | None
    integral: float | None
    concentration_M: float | None
    snr: float | None
    line_width_hz: float | None = Field(
        default=None,
        description="natural line width at half height (fitted width less the processing's "
        "line broadening); broad lines mean the NMR needs shimming",
    )


class Spectrum(BaseModel):
    experiment_id: int
    measurement_id: int
    nucleus: str | None
    ppm: list[float | None]
    intensity: list[float | None]
    regions: list[SpectrumRegion]
    yield_percent: float | None
    conversion_percent: float | None
    qc_status: str
    qc_reasons: list[Any]


class EventOut(BaseModel):
    id: int
    time: dt.datetime
    source: str
    kind: str
    payload: dict[str, Any]
    campaign_id: int | None
    experiment_id: int | None


# No max_length on protocol text: its bound is the max_yaml_bytes setting, checked by the
# YAML loader (an issue at 1:1), and the request body's by the app (413).
class NewCampaign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol_yaml: str = Field(min_length=1, pattern=NO_CONTROL)


class ProtocolText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol_yaml: str = Field(pattern=NO_CONTROL)


class AbortRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("aborted from the dashboard", max_length=500, pattern=NO_CONTROL)


class Issue(BaseModel):
    message: str
    line: int | None
    column: int | None
    path: str | None


class Validation(BaseModel):
    valid: bool
    issues: list[Issue]


class Created(BaseModel):
    id: int


class Example(BaseModel):
    name: str
    title: str
    text: str


class UserOut(BaseModel):
    id: int
    name: str
    role: str
    disabled: bool
    created_at: dt.datetime


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME)
    role: str = Field(pattern=r"^(viewer|operator|admin)$")
    password: str = Field(min_length=8, max_length=1000, pattern=NO_CONTROL)


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str | None = Field(None, pattern=r"^(viewer|operator|admin)$")
    # strict: a JSON 0 or "no" must not disable (or enable) an account
    disabled: bool | None = Field(None, strict=True)
    password: str | None = Field(None, min_length=8, max_length=1000, pattern=NO_CONTROL)


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked: bool


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")  # a label


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once: store it now.")
